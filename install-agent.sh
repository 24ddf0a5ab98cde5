#!/bin/sh
# install-agent.sh: install the buildd-agent binary from a GitHub release.
#
#   curl -fsSL https://raw.githubusercontent.com/buildd-dev/buildd-agent/main/install-agent.sh | sh
#   curl -fsSL .../install-agent.sh | sh -s -- --version 1.2.3
#
# POSIX sh (bash, dash, busybox ash). Everything runs from `main` at the very
# end, so a download cut short by the network executes nothing.
set -eu

REPO="buildd-dev/buildd-agent"
BIN="buildd-agent"
DEFAULT_API_URL="https://api.github.com"
DEFAULT_DOWNLOAD_URL="https://github.com/${REPO}/releases/download"

usage() {
    cat <<EOF
install-agent.sh: install ${BIN} from a GitHub release

Usage: install-agent.sh [--version X] [--install-dir DIR]

Options:
  --version X        install version X (1.2.3 or v1.2.3); default: the latest release
  --install-dir DIR  install into DIR
  -h, --help         print this help

Environment:
  BUILDD_AGENT_VERSION       version to install, like --version
  BUILDD_INSTALL_DIR         install directory, like --install-dir; default:
                             /usr/local/bin as root, else ~/.local/bin
  BUILDD_AGENT_DOWNLOAD_URL  release download base (mirrors); default:
                             ${DEFAULT_DOWNLOAD_URL}
  BUILDD_AGENT_API_URL       GitHub API base; default: ${DEFAULT_API_URL}
  GITHUB_TOKEN               sent to the GitHub API (only) against rate limits
  GITHUB_PATH                on GitHub Actions, the install dir is appended to it
  BUILDD_AGENT_SHA256SUMS    a checksum list you trust (sha256sum format, e.g. the
                             release-checksums/ file of the action's tagged source);
                             the download must be listed in it and match
  BUILDD_AGENT_PROVENANCE    auto (default): check the release's build provenance
                             with an authenticated gh when there is one;
                             require: refuse to install without that check; off

The download is checked against its published SHA-256 (and the list you trust)
before anything is installed; the binary is replaced atomically.
EOF
}

say() {
    printf 'install-agent: %s\n' "$*"
}

# Every failure ends here: one line on stderr, non-zero exit, and the EXIT
# trap removes whatever was downloaded.
die() {
    printf 'install-agent: error: %s\n' "$*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "required tool '$1' not found; install it and retry"
}

TMP_DIR=""
TMP_BIN=""
cleanup() {
    if [ -n "$TMP_BIN" ]; then rm -f "$TMP_BIN"; fi
    if [ -n "$TMP_DIR" ]; then rm -rf "$TMP_DIR"; fi
}

# Prints the Rust target triple of this machine, or dies.
detect_target() {
    os=$(uname -s)
    arch=$(uname -m)
    case "$arch" in
        x86_64 | amd64) arch=x86_64 ;;
        aarch64 | arm64) arch=aarch64 ;;
        *) die "unsupported architecture: $arch on $os (${BIN} is built for x86_64 and arm64)" ;;
    esac
    case "$os" in
        Linux) printf '%s-unknown-linux-musl\n' "$arch" ;;
        Darwin)
            # An x86_64 shell under Rosetta 2 on Apple silicon: the native
            # binary is faster and is what the machine really is.
            if [ "$arch" = x86_64 ] &&
                [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
                arch=aarch64
            fi
            printf '%s-apple-darwin\n' "$arch"
            ;;
        *) die "unsupported operating system: $os (${BIN} is built for Linux and macOS)" ;;
    esac
}

# Strips a leading "v" and refuses anything that is not a plain version, so
# the value is safe to put in a URL and a file name.
normalize_version() {
    v=${1#v}
    case "$v" in
        "" | *[!0-9A-Za-z.+-]* | [!0-9]*) die "invalid version '$1' (expected like 1.2.3 or v1.2.3)" ;;
    esac
    printf '%s\n' "$v"
}

# fetch URL OUT [AUTH_HEADER_FILE]: download URL to OUT, or die with a line
# that says what went wrong. The optional file holds an Authorization header
# (curl reads it from the file, so the token is not on a command line).
# POSIX sh has no `local`: the f_ prefix keeps the caller's variables safe.
fetch() {
    f_url=$1
    f_out=$2
    f_auth=${3:-}
    if command -v curl >/dev/null 2>&1; then
        set -- --silent --location --fail --retry 3 --connect-timeout 20 \
            --output "$f_out" --write-out '%{http_code}'
        if [ -n "$f_auth" ]; then set -- "$@" --header "@$f_auth"; fi
        if f_code=$(curl "$@" "$f_url"); then return 0; else f_rc=$?; fi
        case "$f_code" in
            404) die "not found (HTTP 404): $f_url" ;;
            000 | "") die "cannot reach $f_url (curl exit $f_rc: no network, or the host is down)" ;;
            *) die "download failed (HTTP $f_code): $f_url" ;;
        esac
    elif command -v wget >/dev/null 2>&1; then
        # Not -q: GNU wget would then not say "ERROR 404". Its chatter
        # goes to a file, read only to tell a 404 from other failures.
        set -- -O "$f_out"
        if [ -n "$f_auth" ]; then
            # wget takes headers on the command line only.
            set -- "$@" --header "$(cat "$f_auth")"
        fi
        if wget "$@" "$f_url" 2>"$TMP_DIR/wget.err"; then return 0; else f_rc=$?; fi
        if grep -Eq 'ERROR 404|HTTP/[0-9.]+ 404' "$TMP_DIR/wget.err" 2>/dev/null; then
            die "not found (HTTP 404): $f_url"
        fi
        # GNU wget: 8 means the server answered with an error status.
        if [ "$f_rc" = 8 ]; then die "download failed (server error): $f_url"; fi
        die "cannot download $f_url (wget exit $f_rc: no network, or the host is down)"
    else
        die "neither curl nor wget found; install one and retry"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sum=$(sha256sum "$1") || die "sha256sum failed on $1"
    elif command -v shasum >/dev/null 2>&1; then
        sum=$(shasum -a 256 "$1") || die "shasum failed on $1"
    else
        die "neither sha256sum nor shasum found; cannot verify the download"
    fi
    printf '%s\n' "${sum%% *}"
}

latest_version() {
    api=${BUILDD_AGENT_API_URL:-$DEFAULT_API_URL}
    api=${api%/}
    auth=""
    if [ -n "${GITHUB_TOKEN:-}" ]; then
        auth="$TMP_DIR/auth-header"
        (umask 077 && printf 'Authorization: Bearer %s\n' "$GITHUB_TOKEN" >"$auth")
    fi
    fetch "$api/repos/$REPO/releases/latest" "$TMP_DIR/latest.json" "$auth"
    # One key per line, then pick "tag_name" — works for compact and pretty JSON.
    # shellcheck disable=SC2020 # three characters to three newlines, on purpose
    tag=$(tr ',{}' '\n\n\n' <"$TMP_DIR/latest.json" |
        sed -n 's/^[[:space:]]*"tag_name"[[:space:]]*:[[:space:]]*"\([^"]*\)".*$/\1/p' |
        head -n 1)
    [ -n "$tag" ] || die "no tag_name in the latest-release answer from $api; set --version"
    normalize_version "$tag"
}

default_install_dir() {
    if [ "$(id -u)" = 0 ]; then
        printf '%s\n' /usr/local/bin
    elif [ -n "${HOME:-}" ]; then
        printf '%s\n' "$HOME/.local/bin"
    else
        die "HOME is not set; set BUILDD_INSTALL_DIR"
    fi
}

# Prints the version the binary at $1 reports ("buildd-agent X (commit)"), or nothing.
installed_version() {
    [ -x "$1" ] || return 0
    out=$("$1" --version 2>/dev/null) || return 0
    case "$out" in
        "$BIN "*) out=${out#"$BIN "}; printf '%s\n' "${out%% *}" ;;
    esac
}

path_hint() {
    case ":${PATH:-}:" in
        *":$1:"*) ;;
        *) say "note: $1 is not on your PATH; add it with: export PATH=\"$1:\$PATH\"" ;;
    esac
    if [ -n "${GITHUB_PATH:-}" ]; then
        printf '%s\n' "$1" >>"$GITHUB_PATH" || die "cannot append to GITHUB_PATH ($GITHUB_PATH)"
    fi
}

main() {
    version=${BUILDD_AGENT_VERSION:-}
    pinned=""
    if [ -n "$version" ]; then pinned=1; fi
    dir=${BUILDD_INSTALL_DIR:-}
    while [ $# -gt 0 ]; do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --version)
                [ $# -ge 2 ] || die "--version needs a value"
                version=$2; pinned=1; shift 2 ;;
            --version=*) version=${1#--version=}; pinned=1; shift ;;
            --install-dir)
                [ $# -ge 2 ] || die "--install-dir needs a value"
                dir=$2; shift 2 ;;
            --install-dir=*) dir=${1#--install-dir=}; shift ;;
            *) die "unknown argument '$1' (see --help)" ;;
        esac
    done

    for tool in uname mkdir mktemp rm tar gzip cp chmod mv sed tr head grep id; do
        need "$tool"
    done
    target=$(detect_target)
    if [ -z "$dir" ]; then dir=$(default_install_dir); fi
    dir=${dir%/}
    [ -n "$dir" ] || dir=/

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/buildd-agent-install.XXXXXX") ||
        die "cannot create a temporary directory in ${TMPDIR:-/tmp}"

    if [ -n "$pinned" ]; then
        version=$(normalize_version "$version")
    else
        version=$(latest_version)
    fi

    dest="$dir/$BIN"
    if [ "$(installed_version "$dest")" = "$version" ]; then
        say "$BIN $version is already installed at $dest; nothing to do"
        path_hint "$dir"
        exit 0
    fi

    base=${BUILDD_AGENT_DOWNLOAD_URL:-$DEFAULT_DOWNLOAD_URL}
    base=${base%/}
    name="$BIN-$version-$target"
    url="$base/v$version/$name.tar.gz"
    say "downloading $BIN $version for $target"
    fetch "$url.sha256" "$TMP_DIR/$name.tar.gz.sha256"
    fetch "$url" "$TMP_DIR/$name.tar.gz"

    # "<64 hex digits>  <file name>", as sha256sum writes it.
    expected=""
    read -r expected _ <"$TMP_DIR/$name.tar.gz.sha256" || true
    case "$expected" in
        *[!0-9a-fA-F]* | "") die "malformed checksum file: $url.sha256" ;;
    esac
    [ ${#expected} -eq 64 ] || die "malformed checksum file: $url.sha256"
    expected=$(printf '%s\n' "$expected" | tr 'A-F' 'a-f')
    actual=$(sha256_of "$TMP_DIR/$name.tar.gz")
    [ "$actual" = "$expected" ] ||
        die "checksum mismatch for $name.tar.gz (expected $expected, got $actual); refusing to install"

    check_pinned "$TMP_DIR/$name.tar.gz" "$name.tar.gz" "$actual"
    check_provenance "$TMP_DIR/$name.tar.gz" "$name.tar.gz"

    tar -xzf "$TMP_DIR/$name.tar.gz" -C "$TMP_DIR" 2>/dev/null ||
        die "cannot unpack $name.tar.gz (corrupt archive?)"
    [ -f "$TMP_DIR/$name/$BIN" ] || die "$name.tar.gz does not contain $name/$BIN"

    if [ -e "$dir" ] && [ ! -d "$dir" ]; then
        die "install directory $dir exists and is not a directory"
    fi
    mkdir -p "$dir" 2>/dev/null || die "cannot create install directory $dir; set BUILDD_INSTALL_DIR to a writable directory"
    # Write beside the destination, then rename: a running agent keeps its
    # old inode, and nobody ever sees a half-written binary.
    TMP_BIN="$dir/.$BIN.new.$$"
    cp "$TMP_DIR/$name/$BIN" "$TMP_BIN" 2>/dev/null ||
        die "cannot write to $dir (permission denied?); set BUILDD_INSTALL_DIR to a writable directory or run as root"
    chmod 755 "$TMP_BIN" || die "cannot make $TMP_BIN executable"
    mv -f "$TMP_BIN" "$dest" 2>/dev/null || die "cannot move the new binary into place at $dest"
    TMP_BIN=""

    say "installed $BIN $version to $dest"
    path_hint "$dir"
}

# check_pinned FILE NAME SHA256: FILE (published as NAME) must be listed with
# SHA256 in BUILDD_AGENT_SHA256SUMS when that is set. The .sha256 beside the
# tarball comes from the same place as the tarball; this list does not.
check_pinned() {
    pins=${BUILDD_AGENT_SHA256SUMS:-}
    [ -n "$pins" ] || return 0
    [ -r "$pins" ] || die "cannot read BUILDD_AGENT_SHA256SUMS file $pins"
    pinned=""
    while read -r sum file; do
        if [ "${file#\*}" = "$2" ]; then pinned=$(printf '%s\n' "$sum" | tr 'A-F' 'a-f'); fi
    done <"$pins"
    [ -n "$pinned" ] || die "$2 is not listed in $pins; refusing to install"
    [ "$pinned" = "$3" ] ||
        die "checksum mismatch for $2 against $pins (pinned $pinned, got $3); refusing to install"
    say "checksum matches the pinned list $pins"
}

# check_provenance FILE NAME: verify the GitHub build-provenance attestation of
# FILE with `gh attestation verify`, as BUILDD_AGENT_PROVENANCE says.
check_provenance() {
    mode=${BUILDD_AGENT_PROVENANCE:-auto}
    case "$mode" in
        off) return 0 ;;
        auto | require) ;;
        *) die "BUILDD_AGENT_PROVENANCE must be auto, require or off (got '$mode')" ;;
    esac
    if command -v gh >/dev/null 2>&1 && gh auth status >/dev/null 2>&1; then
        gh attestation verify "$1" --repo "$REPO" >/dev/null 2>&1 ||
            die "$2 has no valid build provenance for $REPO (gh attestation verify failed); refusing to install"
        say "verified the build provenance of $2 (GitHub attestation of $REPO)"
    elif [ "$mode" = require ]; then
        die "BUILDD_AGENT_PROVENANCE=require needs an authenticated gh (gh auth login, or GH_TOKEN)"
    else
        say "build provenance not checked (needs an authenticated gh); to check by hand: gh attestation verify $2 --repo $REPO"
    fi
}

main "$@"
