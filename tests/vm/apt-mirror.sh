#!/usr/bin/env bash
# The Debian archive this machine's apt already uses for a suite: the first `deb` entry whose
# suite is exactly SUITE (not SUITE-security or SUITE-updates), read the way apt reads its
# sources: /etc/apt/sources.list, then /etc/apt/sources.list.d/*.list (one-line format) and
# *.sources (deb822: `Types:`, `URIs:`, `Suites:`, `Enabled:`), in file-name order. burstd
# names no mirror host itself; the machine's administrator already chose one.
#
#   apt-mirror.sh [APT_DIR [SUITE]]     APT_DIR defaults to /etc/apt, SUITE to bookworm
#
# Prints the URI on stdout; exits 1 with the files it read on stderr when none fits. Only
# URIs debootstrap can fetch from are taken (http, https, ftp, file).
set -euo pipefail

apt_mirror() {
    local dir=${1:-/etc/apt} suite=${2:-bookworm}
    local files=() listed=() f
    [[ -f $dir/sources.list ]] && files+=("$dir/sources.list")
    for f in "$dir"/sources.list.d/*.list "$dir"/sources.list.d/*.sources; do
        [[ -f $f ]] && listed+=("$f")
    done
    # apt reads sources.list.d in file-name order, whatever the extension.
    if [[ ${#listed[@]} -gt 0 ]]; then
        mapfile -t listed < <(printf '%s\n' "${listed[@]}" | LC_ALL=C sort)
        files+=("${listed[@]}")
    fi
    local uri=""
    for f in "${files[@]}"; do
        if [[ $f == *.sources ]]; then
            uri=$(deb822_uri "$f" "$suite")
        else
            uri=$(one_line_uri "$f" "$suite")
        fi
        if [[ -n $uri ]]; then
            printf '%s\n' "$uri"
            return 0
        fi
    done
    {
        printf 'no deb entry for suite %s in the apt sources' "$suite"
        if [[ ${#files[@]} -gt 0 ]]; then
            printf ' (read: %s)' "${files[*]}"
        else
            printf ' (none found: %s/sources.list, %s/sources.list.d/*.list, *.sources)' "$dir" "$dir"
        fi
        printf '; set BURSTD_VM_MIRROR to a Debian archive URL that has %s\n' "$suite"
    } >&2
    return 1
}

# `deb [options] URI SUITE [COMPONENT...]`, comments after '#'.
one_line_uri() {
    awk -v suite="$2" '
        { sub(/#.*/, "") }
        $1 != "deb" { next }
        {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            uri = $i; s = $(i + 1)
            if (s == suite && uri ~ /^(https?|ftp|file):/) { print uri; exit }
        }' "$1"
}

# deb822 stanzas separated by blank lines; a field continues on lines starting with a blank;
# lines starting with '#' are comments.
deb822_uri() {
    awk -v suite="$2" '
        function flush(   n, u, s, i, j, found) {
            if (done) return
            if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
                n = split(suites, s, " ")
                for (i = 1; i <= n; i++) if (s[i] == suite) found = 1
                if (found) {
                    n = split(uris, u, " ")
                    for (j = 1; j <= n; j++) if (u[j] ~ /^(https?|ftp|file):/) { print u[j]; done = 1; exit }
                }
            }
            types = ""; uris = ""; suites = ""; enabled = ""; key = ""
        }
        /^#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ {
            v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v)
            if (key == "types") types = types " " v
            else if (key == "uris") uris = uris " " v
            else if (key == "suites") suites = suites " " v
            next
        }
        {
            key = tolower($0); sub(/:.*/, "", key)
            v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
            if (key == "types") types = v
            else if (key == "uris") uris = v
            else if (key == "suites") suites = v
            else if (key == "enabled") enabled = v
        }
        END { flush() }' "$1"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    apt_mirror "$@"
fi
