# Sourced by the scripts in scripts/ (not run): the one way they install Debian packages.
#
#   . "$(dirname "$0")/lib.sh"
#   apt_install PKG...      install the packages (all at once), as root; nothing when no PKG
#   install_build_deps      what building hb needs beside Rust (the bundled librdkafka's C
#                           build, and the OpenSSL it links in, built from source by openssl-src):
#                           a C and C++ compiler, make, pkg-config, perl with IPC::Cmd
#
# Installing needs root: the scripts run apt-get directly when they are root, through sudo
# otherwise (sudo then asks for a password unless it is configured not to). A fresh machine
# (a new container, a cloud image) often has empty package lists, where every install fails
# with "Unable to locate package": apt_install runs `apt-get update` first when the lists are
# empty, and once more when an install fails (lists too old for a package), then retries.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "${0##*/}: '$*' needs root, and sudo is not installed: run it as root" >&2
        return 1
    fi
}

# Exported, so that scripts run by a script that already updated do not update again.
apt_update_once() {
    [ -n "${HB_APT_UPDATED:-}" ] && return 0
    echo "${0##*/}: apt-get update (needs root)" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >&2
    export HB_APT_UPDATED=1
}

apt_lists_empty() {
    ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

apt_install() {
    [ $# -gt 0 ] || return 0
    echo "${0##*/}: installing $* (needs root)" >&2
    if apt_lists_empty; then apt_update_once; fi
    local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@")
    if ! as_root "${install[@]}" >&2; then
        [ -z "${HB_APT_UPDATED:-}" ] || return 1
        apt_update_once
        as_root "${install[@]}" >&2
    fi
}

install_build_deps() {
    local missing=()
    command -v cc >/dev/null || missing+=(gcc)
    command -v g++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    perl -MIPC::Cmd -e 1 2>/dev/null || missing+=(perl)   # OpenSSL's Configure
    apt_install "${missing[@]}"
}
