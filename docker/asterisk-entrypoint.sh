#!/bin/sh
# Entrypoint of the Asterisk image: render the project's config/asterisk/*.conf templates, then run Asterisk.
#
# Same rendering as ivr.asterisk.runner.render_configs (tests/unit/test_docker.py compares the outputs):
# every @@VAR@@ is replaced, literally, by the environment variable VAR, in this order:
#   ASTDIR ARI_USER ARI_PASSWORD BIND_ADDRESS HTTP_PORT SIP_PORT RTP_START RTP_END APP AGENT_ENDPOINTS
# AGENT_ENDPOINTS is generated (never taken from the environment as text):
#   IVR_AGENT_ENDPOINTS="alice bob"      PJSIP endpoint names of the agents' softphones (empty: none)
#   IVR_AGENT_ALICE_PASSWORD=...         SIP password of each (name upper-cased, '-' -> '_'), the same
#                                        variables the app reads, so one .env serves both containers.
#
# Usage:
#   asterisk-entrypoint.sh                  render $IVR_TEMPLATE_DIR into $ASTDIR/etc and exec asterisk
#   asterisk-entrypoint.sh render SRC DST   render the templates in SRC into DST and exit (tests, debugging)
# Plain POSIX sh + awk (the image has no python). Secrets only come from the environment.
set -eu

die() { echo "asterisk-entrypoint: ERROR: $*" >&2; exit 1; }

: "${ASTDIR:=/srv/ivr}"
: "${ARI_USER:=ivr}"
: "${ARI_PASSWORD:=}"
: "${BIND_ADDRESS:=127.0.0.1}"
: "${HTTP_PORT:=8088}"
: "${SIP_PORT:=5060}"
: "${RTP_START:=20000}"
: "${RTP_END:=20999}"
: "${APP:=ivr}"
: "${IVR_AGENT_ENDPOINTS:=}"
: "${IVR_TEMPLATE_DIR:=/usr/share/ivr/asterisk}"
export ASTDIR ARI_USER ARI_PASSWORD BIND_ADDRESS HTTP_PORT SIP_PORT RTP_START RTP_END APP

NL='
'

check_values() {
    val=''
    [ -n "$ARI_PASSWORD" ] || die "ARI_PASSWORD is empty: set it (compose passes IVR_ARI_PASSWORD from .env)"
    for v in ASTDIR ARI_USER ARI_PASSWORD BIND_ADDRESS HTTP_PORT SIP_PORT RTP_START RTP_END APP; do
        eval "val=\${$v}"
        case "$val" in
            *"$NL"*) die "$v contains a newline (it would inject config lines)" ;;
        esac
    done
    for v in HTTP_PORT SIP_PORT RTP_START RTP_END; do
        eval "val=\${$v}"
        case "$val" in
            ''|*[!0-9]*) die "$v must be a port number, got '$val'" ;;
        esac
    done
}

# The agents' endpoint/auth/aor sections, byte for byte what runner._agent_endpoints
# (ivr/asterisk/endpoints.py agent_objects, a SIP phone) writes.
agent_endpoints() {
    first=1
    pw=
    for name in $IVR_AGENT_ENDPOINTS; do
        case "$name" in
            *[!A-Za-z0-9_-]*) die "agent endpoint name '$name': only letters, digits, '_' and '-'" ;;
        esac
        var="IVR_AGENT_$(printf '%s' "$name" | tr 'a-z-' 'A-Z_')_PASSWORD"
        eval "pw=\${$var:-}"
        [ -n "$pw" ] || die "agent $name: no SIP password (set $var)"
        case "$pw" in
            *"$NL"*) die "$var contains a newline" ;;
        esac
        [ $first = 1 ] || printf '\n'
        first=0
        printf '[%s]\ntype = endpoint\ncontext = from-agents\nauth = %s-auth\naors = %s\n' "$name" "$name" "$name"
        printf 'disallow = all\nallow = ulaw,alaw\ndirect_media = no\ndtmf_mode = rfc4733\nrtp_symmetric = yes\n'
        printf 'force_rport = yes\nrewrite_contact = yes\ntransport = transport-udp\nmedia_address = %s\n' "$BIND_ADDRESS"
        printf 'bind_rtp_to_media_address = yes\n\n'
        printf '[%s-auth]\ntype = auth\nauth_type = userpass\nusername = %s\npassword = %s\n\n' "$name" "$name" "$pw"
        printf '[%s]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\nqualify_frequency = 0\n' "$name"
    done
}

# render SRC DST: literal (not regex) replacement, so passwords may hold & \ / | $ and quotes.
render() {
    src=$1 dst=$2
    [ -d "$src" ] || die "no template directory $src"
    check_values
    mkdir -p "$dst"
    block=$(mktemp)
    trap 'rm -f "$block"' EXIT
    agent_endpoints > "$block"
    found=0
    for f in "$src"/*.conf; do
        [ -e "$f" ] || continue
        found=1
        out="$dst/$(basename "$f")"
        (umask 077; : > "$out")
        awk -v blockfile="$block" '
            function repl(s, token, val,    out, i) {
                out = ""
                while ((i = index(s, token)) > 0) {
                    out = out substr(s, 1, i - 1) val
                    s = substr(s, i + length(token))
                }
                return out s
            }
            BEGIN {
                n = split("ASTDIR ARI_USER ARI_PASSWORD BIND_ADDRESS HTTP_PORT SIP_PORT RTP_START RTP_END APP", names, " ")
                agents = ""
                while ((getline line < blockfile) > 0) agents = agents line "\n"
            }
            {
                s = $0
                for (k = 1; k <= n; k++) s = repl(s, "@@" names[k] "@@", ENVIRON[names[k]])
                s = repl(s, "@@AGENT_ENDPOINTS@@", agents)
                s = repl(s, "@@TRUNK_ENDPOINTS@@", "")   # outbound trunks (transfers): not in the image yet
                print s
            }' "$f" >> "$out"
    done
    rm -f "$block"
    trap - EXIT
    [ $found = 1 ] || die "no *.conf templates in $src"
    left=$(grep -l '@@[A-Z_]*@@' "$dst"/*.conf 2>/dev/null || true)
    [ -z "$left" ] || die "placeholders without a value left in: $left (a new template variable?)"
}

case "${1:-run}" in
    render)
        [ $# -eq 3 ] || die "usage: $0 render SRC DST"
        render "$2" "$3"
        ;;
    run)
        for d in etc run log spool/recording lib cache; do mkdir -p "$ASTDIR/$d"; done
        rm -f "$ASTDIR"/etc/*.conf "$ASTDIR/run/asterisk.ctl"
        render "$IVR_TEMPLATE_DIR" "$ASTDIR/etc"
        chown -R asterisk:asterisk "$ASTDIR"
        echo "asterisk-entrypoint: configs rendered in $ASTDIR/etc (SIP $BIND_ADDRESS:$SIP_PORT, ARI :$HTTP_PORT," \
             "agents: ${IVR_AGENT_ENDPOINTS:-none})"
        exec /usr/sbin/asterisk -f -n -U asterisk -G asterisk -C "$ASTDIR/etc/asterisk.conf"
        ;;
    *)
        die "usage: $0 [run | render SRC DST]"
        ;;
esac
