#!/bin/sh
# Verifies the worked example of docs/PROTOCOL.md with OpenSSL's Ed25519, an implementation
# independent of libsodium: rebuild the signed bytes (domain prefix, a zero byte, payload) and
# the public key from the envelope and the key file alone.
set -eu
FIX=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
env=$(cat "$FIX/job_envelope.json")
b64() { printf '%s' "$env" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
b64 payload | base64 -d > "$TMP/payload"
cmp "$TMP/payload" "$FIX/job_payload.json"
b64 sig | base64 -d > "$TMP/sig"
{ printf 'pgrollout/job/v1'; printf '\000'; cat "$TMP/payload"; } > "$TMP/msg"
# SubjectPublicKeyInfo for Ed25519 = fixed 12-byte DER prefix + the 32 key bytes
pub=$(cut -d' ' -f2 "$FIX/example.pub")
{ printf '\060\052\060\005\006\003\053\145\160\003\041\000'; printf '%s' "$pub" | base64 -d; } > "$TMP/pub.der"
openssl pkey -pubin -inform DER -in "$TMP/pub.der" -out "$TMP/pub.pem"
openssl pkeyutl -verify -pubin -inkey "$TMP/pub.pem" -rawin -in "$TMP/msg" -sigfile "$TMP/sig"
