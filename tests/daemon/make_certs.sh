#!/bin/sh
# make_certs.sh - a throwaway PKI for the TLS tests, with the openssl CLI.
#
# usage: make_certs.sh DIR
# Writes into DIR: ca.pem/ca.key (the test CA), server.pem/server.key
# (SAN DNS:localhost, IP:127.0.0.1), server2.pem/server2.key (SAN
# DNS:reloaded.test, for reload tests), and client certificates signed by the
# CA: kernel-a (SAN URI spiffe://test/kernel-a), reader, admin, stranger
# (valid but in no permission file), expired (not valid after yesterday);
# other-ca.pem and rogue.pem/rogue.key signed by that other CA.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

# A CA: NAME SUBJECT
ca() {
	key "$1"
	openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -out "$1.pem" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
}

# A leaf: NAME CN SAN CA [STARTDATE ENDDATE]
leaf() {
	key "$1"
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
	printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$3" >"$1.ext"
	if [ $# -ge 6 ]; then
		# openssl ca is the one that can date a certificate in the past.
		mkdir -p "ca-$4"
		: >"ca-$4/index.txt"
		[ -f "ca-$4/serial" ] || echo 1000 >"ca-$4/serial"
		cat >"ca-$4/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = ca-$4/index.txt
serial = ca-$4/serial
new_certs_dir = ca-$4
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
CNF
		openssl ca -batch -config "ca-$4/ca.cnf" -cert "$4.pem" -keyfile "$4.key" \
			-in "$1.csr" -out "$1.pem" -startdate "$5" -enddate "$6" \
			-extfile "$1.ext" -notext 2>/dev/null
	else
		openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial \
			-days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
	fi
}

ca ca "budgetd test CA"
ca other-ca "another CA"
leaf server localhost "DNS:localhost,IP:127.0.0.1" ca
leaf server2 reloaded.test "DNS:reloaded.test,IP:127.0.0.1" ca
leaf kernel-a kernel-a "URI:spiffe://test/kernel-a" ca
leaf reader reader "DNS:reader.test" ca
leaf admin admin "DNS:admin.test" ca
leaf limited limited "DNS:limited.test" ca
leaf stranger stranger "DNS:stranger.test" ca
yesterday=$(date -u -d '-2 days' +%Y%m%d%H%M%SZ)
before=$(date -u -d '-1 days' +%Y%m%d%H%M%SZ)
leaf expired expired "DNS:expired.test" ca "$yesterday" "$before"
leaf rogue rogue "DNS:rogue.test" other-ca
echo ok
