#!/usr/bin/env bash
# security-secrets.sh - keys and certificates for k8s/secure, and the
# Kubernetes Secrets that carry them.
#   deploy/security-secrets.sh DIR [NAMESPACE] | kubectl apply -f -
# Writes into DIR (created, mode 0700; keep it, or delete it once applied):
#   CURVE key pairs (nsq-keygen, czmq certificates): broker (shared by the
#   brokers: clients name one server key), lookupd, worker;
#   a CA and one TLS certificate for the brokers' and lookupds' names
#   (openssl, ECDSA P-256, valid a year);
# and prints the Secret manifests on stdout:
#   nsq-curve          the key pairs (each pod's init container copies its
#                      own secret file with mode 0600) and public certs
#   nsq-curve-clients  public certs of the clients brokers accept (workers,
#                      and lookupds, whose console replays dead letters; add
#                      your producers' with nsq-keygen and apply again)
#   nsq-curve-brokers  the brokers' public cert, which lookupds accept
#   nsq-tls            ca.crt, tls.crt, tls.key
# Needs nsq-keygen (from the image or the build), openssl and kubectl
# (only to write manifests: no cluster is asked).
set -euo pipefail
dir=${1:?usage: security-secrets.sh DIR [NAMESPACE]}
namespace=${2:-nsq}
keygen=${NSQ_KEYGEN:-nsq-keygen}
mkdir -p -m 700 "$dir"
cd "$dir"
for name in broker lookupd worker; do
    [ -e "$name" ] || "$keygen" "$name" >/dev/null
done
if [ ! -e tls.crt ]; then
    names="DNS:*.nsq-broker.$namespace.svc.cluster.local,DNS:*.nsq-broker,DNS:nsq-broker-http"
    names="$names,DNS:nsq-broker-http.$namespace,DNS:*.nsq-lookupd.$namespace.svc.cluster.local"
    names="$names,DNS:*.nsq-lookupd,DNS:localhost,IP:127.0.0.1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=nsq-zmq CA" -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=nsq-zmq" -keyout tls.key -out tls.csr 2>/dev/null
    printf 'subjectAltName=%s\n' "$names" > tls.ext
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
        -extfile tls.ext -out tls.crt 2>/dev/null
    chmod 600 ca.key tls.key
fi
secret() {
    kubectl create secret generic "$1" --namespace="$namespace" --dry-run=client -o yaml "${@:2}"
    echo ---
}
secret nsq-curve --from-file=broker --from-file=broker_secret --from-file=lookupd \
    --from-file=lookupd_secret --from-file=worker_secret
secret nsq-curve-clients --from-file=worker --from-file=lookupd
secret nsq-curve-brokers --from-file=broker
secret nsq-tls --from-file=ca.crt --from-file=tls.crt --from-file=tls.key
