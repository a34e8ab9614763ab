/// `verify.sh`, shipped in every bundle: checks the bundle with stock OpenSSL 3 and jq only, given the station's
/// public key as PEM. The bundled copy is itself a subject of the attestation; an auditor should run a trusted copy
/// (this text, or the repository's) with the key from the station's records.
enum VerifyScript {
    static let text = #"""
        #!/bin/sh
        # Verify this report bundle's attestation.dsse.json (DSSE, Ed25519, in-toto Statement v1).
        # usage:  sh verify.sh STATION_PUBLIC_KEY.pem [BUNDLE_DIR]      (BUNDLE_DIR defaults to .)
        # needs:  OpenSSL 3 (pkeyutl -rawin), jq, and POSIX sh, find, sed, sort, uniq, comm, paste, tr, wc, cut.
        # exit:   0 verified, 1 verification failed, 2 usage or tool problem.
        # Get the public key from the station's records, not from the bundle, and compare the keyid printed below
        # with the fingerprint on record. A bundled verify.sh is itself a subject, but only a trusted copy of this
        # script proves anything: a tampered script can print "VERIFIED".
        set -eu
        PT=application/vnd.in-toto+json
        PRED=https://in-toto.io/attestation/test-result/v0.1
        E=attestation.dsse.json
        die() { echo "FAIL: $*" >&2; exit 1; }
        [ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 STATION_PUBLIC_KEY.pem [BUNDLE_DIR]" >&2; exit 2; }
        for t in openssl jq; do command -v $t >/dev/null || { echo "missing tool: $t" >&2; exit 2; }; done
        T=$(mktemp -d) && trap 'rm -rf "$T"' EXIT
        sha() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
        len() { wc -c < "$1" | tr -d ' '; }
        b64d() { tr '_-' '/+' | tr -d '\n' > "$T/b64"   # DSSE: accept standard and URL-safe, padded or not
                 while [ $(( $(len "$T/b64") % 4 )) -ne 0 ]; do printf = >> "$T/b64"; done
                 openssl base64 -d -A -in "$T/b64"; }
        [ -f "$0" ] && echo "script  $0 sha256 $(sha "$0")"
        openssl pkey -pubin -in "$1" -out "$T/pub.pem" 2>/dev/null &&
          openssl pkey -pubin -in "$T/pub.pem" -outform DER -out "$T/spki" || { echo "cannot read public key $1" >&2; exit 2; }
        KEYID=$(sha "$T/spki")
        echo "key     $1 keyid $KEYID"
        cd "${2:-.}" || exit 2
        [ -f $E ] || die "no $E in $(pwd)"

        # (1) envelope, keyid, signature over PAE(payloadType, payload)
        jq -e 'type=="object" and (.payload|type)=="string" and (.signatures|type)=="array"' $E >/dev/null 2>&1 ||
          die "$E is not a DSSE envelope"
        [ "$(jq -r .payloadType $E)" = "$PT" ] || die "payloadType is $(jq -c .payloadType $E), expected \"$PT\""
        # One rule, as `acceptance verify` applies it: exactly one signature, by this (the station's) key.
        [ "$(jq '.signatures | length' $E)" = 1 ] ||
          die "signatures: the envelope carries $(jq '.signatures | length' $E); a bundle has exactly one, by its station's key"
        [ "$(jq -r '.signatures[0].keyid | strings' $E)" = "$KEYID" ] ||
          die "keyid: the signature is not by this key (envelope keyid: $(jq -r '.signatures[0].keyid' $E))"
        jq -j .payload $E | b64d > "$T/body"
        jq -j --arg k "$KEYID" '.signatures[] | select(.keyid==$k) | .sig' $E | b64d > "$T/sig"
        printf 'DSSEv1 %s %s %s ' "${#PT}" "$PT" "$(len "$T/body")" > "$T/pae"   # PT is ASCII: chars = bytes
        cat "$T/body" >> "$T/pae"
        openssl pkeyutl -verify -pubin -inkey "$T/pub.pem" -rawin -in "$T/pae" -sigfile "$T/sig" >/dev/null 2>&1 ||
          die "signature: does not verify with key $1 (payload or signature altered, or another key)"
        echo "ok      signature (Ed25519 over DSSE PAE, $(len "$T/body")-byte payload) by keyid $KEYID"

        # (2) statement
        S="$T/body"
        jq -e --arg p "$PRED" '._type=="https://in-toto.io/Statement/v1" and .predicateType==$p and (.subject|type)=="array"
          and (.subject | all(type=="object" and (.name|type)=="string" and ((.digest.sha256//"")|test("^[0-9a-f]{64}$"))))' \
          "$S" >/dev/null 2>&1 || die "payload is not an in-toto Statement v1 / test-result v0.1 with sha256 subjects"

        # (3) the files present are exactly the subjects (attestation.dsse.json and approval.dsse.json excepted)
        jq -r '.subject[].name' "$S" | LC_ALL=C sort > "$T/want"
        find . ! -type d ! -path ./$E ! -path ./approval.dsse.json | sed 's|^\./||' | LC_ALL=C sort > "$T/have"
        [ -z "$(LC_ALL=C uniq -d "$T/want")" ] || die "subject names repeated: $(LC_ALL=C uniq -d "$T/want" | paste -s -d ' ' -)"
        [ -z "$(find . -type l)" ] || die "symbolic links in bundle: $(find . -type l | paste -s -d ' ' -)"
        ADDED=$(LC_ALL=C comm -13 "$T/want" "$T/have"); MISSING=$(LC_ALL=C comm -23 "$T/want" "$T/have")
        [ -z "$ADDED" ] || echo "FAIL: not covered by the attestation (added): $(echo "$ADDED" | paste -s -d ' ' -)" >&2
        [ -z "$MISSING" ] || echo "FAIL: attested but missing (removed/renamed): $(echo "$MISSING" | paste -s -d ' ' -)" >&2
        [ -z "$ADDED$MISSING" ] || die "file set differs from the attested subjects (changed after signing, or attestation of another bundle)"
        echo "ok      file set = $(wc -l < "$T/want" | tr -d ' ') attested subjects, nothing added or missing"

        # (4) every subject's sha256
        BAD=0
        jq -r '.subject[] | .digest.sha256 + " " + .name' "$S" > "$T/sums"
        while read -r want name; do
          got=$(sha "./$name")
          [ "$got" = "$want" ] || { echo "FAIL: $name: sha256 is $got, attested $want" >&2; BAD=1; }
        done < "$T/sums"
        [ $BAD = 0 ] || die "file contents differ from the attestation (changed after signing, or attestation of another bundle)"
        echo "ok      sha256 of every file matches"
        [ ! -e approval.dsse.json ] || echo "note    approval.dsse.json present: not a subject here, not checked by this script"
        echo "VERIFIED  run $(jq -r '.predicate.runId // "-"' "$S"), rack $(jq -r '.predicate.rackSerial // "-"' "$S"), verdict $(jq -r '.predicate.verdict // .predicate.result' "$S")"
        echo "signer    $(jq -c '.predicate.signer // "UNSIGNED"' "$S")"
        """#
}
