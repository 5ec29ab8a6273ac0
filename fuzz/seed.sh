#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>/, not committed) from the
# repository's own examples: every frame of docs/PROTOCOL.md, every scenario
# under scenarios/, and psubscribe patterns with channels they should and
# should not match. Run from anywhere; safe to re-run (files are named by
# content).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus"
mkdir -p "$corpus/frame_decode" "$corpus/scenario_parse" "$corpus/glob_match"

# Writes stdin to $1/<sha1 of the content>.
put() {
    local tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    mv "$tmp" "$1/$(sha1sum "$tmp" | cut -c1-40)"
}

# Frames: the JSON after `agent> ` / `agent< ` inside ```frames blocks.
awk '/^```frames/{on=1; next} /^```/{on=0} on && /^[a-z]+[<>] /{sub(/^[a-z]+[<>] /, ""); print}' \
    "$root/docs/PROTOCOL.md" | while IFS= read -r frame; do
    printf '%s' "$frame" | put "$corpus/frame_decode"
done

find "$root/scenarios" -name '*.toml' -print0 | while IFS= read -r -d '' file; do
    put "$corpus/scenario_parse" <"$file"
done

# Globs: `pattern` newline `text`, as the glob_match target splits them.
while IFS= read -r pair; do
    printf '%b' "$pair" | put "$corpus/glob_match"
done <<'PAIRS'
topic:w1/agent:topic-1*\ntopic:w1/agent:topic-12
topic:w1/*\ntopic:w2/agent:x
h[ae]llo\nhello
h[^e]llo\nhallo
h[a-c]llo\nhbllo
a\\*b\na*b
*a*a*a*a*a*a*a*a*a*a*a*a*b\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
a[bc\nab
a\\\na\\
PAIRS

for target in frame_decode scenario_parse glob_match; do
    echo "$target: $(find "$corpus/$target" -type f | wc -l) seeds"
done
