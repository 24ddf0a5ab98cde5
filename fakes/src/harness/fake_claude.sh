#!/bin/sh
# shellcheck disable=SC2154 # the settings are written in place of @SETTINGS@
# The fake `claude` CLI of the test harness (fakes/src/harness/claude.rs writes
# it, with the settings below filled in, into each test's own directory).
#
# Like the real CLI it refuses what the real one refuses (stream-json without
# --verbose, no credentials, bypassPermissions as root without IS_SANDBOX=1);
# each refusal is also recorded as the agent's protocol violation. It records
# every invocation in $records/calls/<pid>/ (args, stdin, env, cwd, pid, and
# grandchild for a hang), then behaves as $behaviour says:
#   replay       print $prefix, then the fixture $fixture, exit $code
#   crash        print $crash_stderr on stderr, exit $code
#   hang         start a grandchild `sleep`, print an init line, wait until
#                killed ($ignore_term=1: both ignore SIGTERM)
#   commands     run each line of $records/commands with `sh -c`, as the real
#                CLI's Bash tool runs a model's commands, streaming each as a
#                tool call and its result (a scripted or hostile model)
#   from-prompt  decided by the task prompt on stdin: HANG hangs quietly (no
#                init line: a task that prints nothing), CRASH exits 3
#                quoting its OAuth token on stderr, SLOW waits a second first,
#                FAIL replays the API-error run, WRITE writes out.txt, HOOK
#                plants git hooks (as a hostile model might), lines
#                `RUN: <command>` are run as in `commands`; anything else
#                replays the successful run.
# Command outputs are recorded in $records/calls/<pid>/command.<n>.*.

# @SETTINGS@

call=$records/calls/$$
mkdir -p "$call"
echo $$ >"$call/pid"
pwd >"$call/cwd"
env >"$call/env"
: >"$call/args"
for a in "$@"; do printf '%s\n' "$a" >>"$call/args"; done
# The --mcp-config file as the real CLI reads it at start (the agent removes it after the
# first line).
prev=
for a in "$@"; do
    if [ "$prev" = --mcp-config ] && [ -f "$a" ]; then cp "$a" "$call/mcp-config"; fi
    prev=$a
done
cat >"$call/stdin"

# refuse VIOLATION MESSAGE: the real CLI's refusal, and the agent's mistake.
refuse() {
    printf '%s\n' "$1" >>"$call/violations"
    printf '%s\n' "$2" >&2
    exit 1
}

case " $* " in
*" --output-format stream-json "*)
    case " $* " in
    *" --verbose "*) ;;
    *) refuse "stream-json output without --verbose" \
        "Error: When using --print, --output-format=stream-json requires --verbose" ;;
    esac
    ;;
esac
# On Bedrock or Vertex the real CLI uses the cloud's credentials instead.
if [ -z "${ANTHROPIC_API_KEY:-}${CLAUDE_CODE_OAUTH_TOKEN:-}" ] &&
    [ -z "${CLAUDE_CODE_USE_BEDROCK:-}${CLAUDE_CODE_USE_VERTEX:-}" ]; then
    refuse "started without credentials" "Invalid API key · Please run /login"
fi
if [ "$root" = 1 ] && [ "${IS_SANDBOX:-}" != 1 ]; then
    refuse "started as root without IS_SANDBOX=1" \
        "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"
fi

init_line() {
    echo '{"type":"system","subtype":"init","model":"fake","claude_code_version":"0.0.0","session_id":"fake"}'
}

replay() {
    cat "$fixtures/$1"
}

# hang quiet|announce: the grandchild's pid file appears whole (renamed into
# place), as tests poll for it; `announce` prints the init line after it.
hang() {
    if [ "$ignore_term" = 1 ]; then trap '' TERM; fi
    sleep 300 &
    echo $! >"$call/grandchild.tmp"
    mv "$call/grandchild.tmp" "$call/grandchild"
    if [ "$1" = announce ]; then init_line; fi
    wait
    exit 0
}

# json_string: stdin as one JSON string literal. Control characters other
# than tab, newline and carriage return are dropped. The x keeps a final
# newline visible to awk, which would otherwise drop it.
json_string() {
    tab=$(printf '\t')
    cr=$(printf '\r')
    {
        LC_ALL=C tr -d '\000-\010\013\014\016-\037'
        printf x
    } |
        LC_ALL=C sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/$tab/\\\\t/g" -e "s/$cr/\\\\r/g" |
        LC_ALL=C awk 'BEGIN { printf "\"" }
            NR > 1 { printf "%s\\n", line }
            { line = $0 }
            END { sub(/x$/, "", line); printf "%s\"", line }'
}

# run_commands FILE: each line of FILE is a command, run as a child of this
# process; its output and status are recorded and streamed as a Bash call.
run_commands() {
    n=0
    while IFS= read -r cmd || [ -n "$cmd" ]; do
        n=$((n + 1))
        out=$call/command.$n
        printf '%s' "$cmd" >"$out.command"
        sh -c "$cmd" >"$out.output" 2>&1 </dev/null
        status=$?
        echo "$status" >"$out.status"
        if [ "$status" = 0 ]; then failed=false; else failed=true; fi
        printf '{"type":"assistant","message":{"id":"msg_fake_%s","type":"message","role":"assistant","model":"fake","content":[{"type":"tool_use","id":"toolu_fake_%s","name":"Bash","input":{"command":%s}}],"usage":{"input_tokens":0,"output_tokens":0}},"parent_tool_use_id":null,"session_id":"fake"}\n' \
            "$n" "$n" "$(json_string <"$out.command")"
        printf '{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_fake_%s","type":"tool_result","content":%s,"is_error":%s}]},"parent_tool_use_id":null,"session_id":"fake"}\n' \
            "$n" "$(json_string <"$out.output")" "$failed"
    done <"$1"
    printf '{"type":"result","subtype":"success","is_error":false,"num_turns":%s,"result":"Ran %s commands.","session_id":"fake","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}\n' \
        "$n" "$n"
}

plant_hooks() {
    d=$(git rev-parse --git-common-dir)
    mkdir -p "$d/hooks" .git-hooks
    for h in pre-commit commit-msg pre-push post-commit; do
        printf '#!/bin/sh\ntouch "%s/hook-ran.%s"\n' "$records" "$h" >"$d/hooks/$h"
        cp "$d/hooks/$h" ".git-hooks/$h"
        chmod +x "$d/hooks/$h" ".git-hooks/$h"
    done
    git config core.hooksPath "$PWD/.git-hooks"
}

# Matched in the shell: a task run may start this script hundreds of times, and
# a grep per keyword would be a process each.
prompt_has() {
    case $prompt in
    *"$1"*) return 0 ;;
    *) return 1 ;;
    esac
}

from_prompt() {
    prompt=$(cat "$call/stdin")
    if prompt_has HANG; then hang quiet; fi
    if prompt_has CRASH; then
        echo "claude: fatal: something broke badly (token ${CLAUDE_CODE_OAUTH_TOKEN:-})" >&2
        exit 3
    fi
    if prompt_has SLOW; then sleep 1; fi
    if prompt_has FAIL; then
        replay api-error-400.jsonl
        exit 1
    fi
    if prompt_has WRITE; then echo marker >out.txt; fi
    if prompt_has HOOK; then plant_hooks; fi
    if prompt_has "RUN: " && sed -n 's/^RUN: //p' "$call/stdin" >"$call/commands" &&
        [ -s "$call/commands" ]; then
        init_line
        run_commands "$call/commands"
        exit 0
    fi
    replay success-bash-tool.jsonl
}

case $behaviour in
replay)
    printf '%s' "$prefix"
    replay "$fixture"
    exit "$code"
    ;;
crash)
    printf '%s\n' "$crash_stderr" >&2
    exit "$code"
    ;;
hang) hang announce ;;
commands)
    init_line
    run_commands "$records/commands"
    ;;
from-prompt) from_prompt ;;
*)
    echo "fake claude: unknown behaviour '$behaviour'" >&2
    exit 70
    ;;
esac
