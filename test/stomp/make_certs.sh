#!/bin/sh
#-------------------------------------------------------------------------
#
# make_certs.sh
#    Create throw-away certificates for the TLS unit tests: a CA, a server
#    certificate for "localhost" / 127.0.0.1 signed by it, and a client
#    certificate whose key is encrypted with the password "test-key-pass".
#
# test/stomp/make_certs.sh
#
#-------------------------------------------------------------------------
set -e
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=outbox test CA" \
	-keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
	-keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	-days 2 -extfile server.ext -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -subj "/CN=outbox client" \
	-passout pass:test-key-pass -keyout client-enc.key -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	-days 2 -out client.pem 2>/dev/null
rm -f server.csr client.csr server.ext ca.srl
