#!/bin/sh
# Make throwaway test certificates with the openssl command line:
#   ca.pem/ca.key                 the test CA (what --tls-ca trusts)
#   server.pem/server.key         server cert for localhost, smtp-emulator,
#                                 127.0.0.1 and ::1, signed by the CA
#   client.pem/client.key         client cert for mail.example.com (the
#                                 cert-restriction scenario's default domain)
#   client-wrong.pem/.key         client cert for wrong.example.net
#   client-expired.pem/.key       client cert for mail.example.com, expired
#   client-untrusted.pem/.key     client cert for mail.example.com signed by
#                                 untrusted-ca.pem (not the test CA)
#   server-expired.pem/.key       expired server certificate
#   server-selfsigned.pem/.key    self-signed server certificate
#   server-wronghost.pem/.key     server certificate for wrong.example.net
# Usage: certs/gen.sh [OUTDIR]   (default: the directory of this script)
# Keys are for tests only and are never committed (see .gitignore).
set -eu
out=${1:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
days=3650

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A CA: $1 name, $2 subject
make_ca() {
    key "$work/$1.key"
    openssl req -x509 -new -key "$work/$1.key" -sha256 -days $days \
        -subj "$2" -out "$work/$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# A leaf signed by CA $1: $2 name, $3 CN, $4 SAN list, $5 EKU,
# $6 start date, $7 end date (YYYYMMDDHHMMSSZ, for `openssl ca`)
make_leaf() {
    key "$work/$2.key"
    openssl req -new -key "$work/$2.key" -subj "/CN=$3" -out "$work/$2.csr" 2>/dev/null
    mkdir -p "$work/db-$2"
    : > "$work/db-$2/index.txt"
    cat > "$work/$2.cnf" <<CNF
[ca]
default_ca = c
[c]
database = $work/db-$2/index.txt
new_certs_dir = $work/db-$2
serial = $work/db-$2/serial
default_md = sha256
policy = p
copy_extensions = none
unique_subject = no
[p]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = $5
subjectAltName = $4
CNF
    openssl rand -hex 8 > "$work/db-$2/serial"
    openssl ca -batch -config "$work/$2.cnf" -cert "$work/$1.pem" \
        -keyfile "$work/$1.key" -in "$work/$2.csr" -out "$work/$2.pem" \
        -extensions ext -startdate "$6" -enddate "$7" -notext 2>/dev/null
}

now=$(date -u +%Y%m%d%H%M%SZ)
later=$(date -u -d "+$days days" +%Y%m%d%H%M%SZ)
old1=20200101000000Z
old2=20210101000000Z

make_ca ca "/CN=smtp-emulator test CA"
make_ca untrusted-ca "/CN=untrusted test CA"
make_leaf ca server localhost "DNS:localhost,DNS:smtp-emulator,IP:127.0.0.1,IP:::1" serverAuth "$now" "$later"
make_leaf ca client mail.example.com "DNS:mail.example.com" clientAuth "$now" "$later"
make_leaf ca client-wrong wrong.example.net "DNS:wrong.example.net" clientAuth "$now" "$later"
make_leaf ca client-expired mail.example.com "DNS:mail.example.com" clientAuth "$old1" "$old2"
make_leaf untrusted-ca client-untrusted mail.example.com "DNS:mail.example.com" clientAuth "$now" "$later"
make_leaf ca server-expired localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth "$old1" "$old2"
make_leaf ca server-wronghost wrong.example.net "DNS:wrong.example.net" serverAuth "$now" "$later"
key "$work/server-selfsigned.key"
openssl req -x509 -new -key "$work/server-selfsigned.key" -sha256 -days $days \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -out "$work/server-selfsigned.pem" 2>/dev/null

for f in ca untrusted-ca server client client-wrong client-expired client-untrusted \
         server-expired server-wronghost server-selfsigned; do
    cp "$work/$f.pem" "$out/$f.pem"
    cp "$work/$f.key" "$out/$f.key"
    chmod 600 "$out/$f.key"
    chmod 644 "$out/$f.pem"
done
# The untrusted CA's key is not needed by anyone.
rm -f "$out/untrusted-ca.key"
echo "certs: wrote test certificates to $out"
