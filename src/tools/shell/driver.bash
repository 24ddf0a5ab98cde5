# The bash tool's session driver (see src/tools/shell/mod.rs): read one
# command from the agent, run it in this shell, so `cd`, variables and
# functions stay for the next one, report its exit status, repeat.
#
# fd 63: the agent's pipe, `<command> NUL <nonce> NUL` per command.
# fd 62: a copy of the output pipe that commands never see; the end-of-command
#        line goes there, so `exec >/dev/null` in a command cannot hide it.
# The driver's own steps run in `{ ...; } 2>/dev/null` with errexit, nounset
# and xtrace off (the command's settings are put back before it runs), so a
# `set -x` or `set -u` of the model's neither shows nor breaks the protocol.
# Everything is `builtin`, so a function the model names `read` or `printf`
# does not replace it; `exec` must run bare (`builtin exec` would make its
# redirections temporary), so a function of that name is removed first. A TERM trap that does nothing keeps the shell alive
# when the agent stops a timed-out command with SIGTERM to the whole group;
# children get the default action again when they exec.
exec 63<&0 0</dev/null 62>&1 2>&1

__buildd_flags=

__buildd_next() {
    builtin trap : TERM
    while :; do
        __buildd_cmd=
        IFS= builtin read -r -d '' -u 63 __buildd_cmd && return 0
        # A trapped signal interrupts `read` with a status above 128: read
        # again. Anything else is the end of the pipe: the agent is gone.
        (($? > 128)) || return 1
    done
}

__buildd_resume() {
    case $__buildd_flags in *e*) builtin set -e ;; esac
    case $__buildd_flags in *u*) builtin set -u ;; esac
    case $__buildd_flags in *x*) builtin set -x ;; esac
}

__buildd_done() {
    __buildd_flags=$-
    builtin set +eux
    # Broken protocol fds (a command closed the shell's saved copies) end
    # the session: the agent sees the shell exit and starts a new one.
    IFS= builtin read -r -d '' -u 63 __buildd_nonce || builtin exit 97
    builtin printf '__buildd_end_%s__ %d\n' "$__buildd_nonce" "$1" >&62 || builtin exit 98
    builtin unset __buildd_nonce
}

while { __buildd_next; } 2>/dev/null; do
    builtin unset -f exec
    exec 0</dev/null 1>&62 2>&62
    { __buildd_resume; } 2>/dev/null
    builtin eval "$__buildd_cmd" 62>&- 63<&-
    { __buildd_done "$?"; } 2>/dev/null
done
builtin exit 0
