#!/bin/sh
# mkcerts.sh DIR HOST - the test suite's certificates, made with the openssl CLI:
#   ca.pem/ca.key        the cluster's CA
#   NAME.pem/NAME.key    node certificates from that CA, SAN DNS:HOST, DNS:localhost, IP:127.0.0.1
#                        (node, node2: two valid ones, for reloads)
#   other-ca.pem, stranger.pem/.key   a CA nobody trusts and a certificate it signed
#   expired.pem/.key     from the right CA, expired yesterday
#   wronghost.pem/.key   from the right CA, SAN DNS:wrong.example only
set -eu
D=$1 HOST=$2
mkdir -p "$D" && cd "$D"
q() { "$@" >/dev/null 2>&1 || { echo "mkcerts: $* failed" >&2; "$@"; exit 1; }; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 30 -subj "/CN=beamlet test CA"
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key \
    -out other-ca.pem -days 30 -subj "/CN=someone else's CA"
node_cert() { # name ca san [days|expired]
    q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
        -subj "/CN=$1"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
    if [ "${4:-}" = expired ]; then
        # x509 -days cannot go back in time: `openssl ca` takes an explicit past window
        mkdir -p cadb && : >cadb/index.txt && echo 1000 >cadb/serial
        printf '[ca]\ndefault_ca=d\n[d]\ndatabase=cadb/index.txt\nserial=cadb/serial\nnew_certs_dir=cadb\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n' >ca.cnf
        q openssl ca -batch -config ca.cnf -cert "$2.pem" -keyfile "$2.key" -in "$1.csr" \
            -out "$1.pem" -startdate 20200101000000Z -enddate 20200102000000Z -extfile "$1.ext" -notext
    else
        q openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
            -out "$1.pem" -days 30 -extfile "$1.ext"
    fi
    chmod 600 "$1.key"
}
SAN="DNS:$HOST,DNS:localhost,IP:127.0.0.1"
node_cert node ca "$SAN"
node_cert node2 ca "$SAN"
node_cert stranger other-ca "$SAN"
node_cert wronghost ca "DNS:wrong.example"
node_cert expired ca "$SAN" expired
