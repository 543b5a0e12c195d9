#!/usr/bin/env bash
# The project's size rules (docs/architecture.md, ../shared/STYLE.md): no source file in src/
# over 700 lines, no function over 80. Functions are found by Universal Ctags (Debian:
# universal-ctags), which gives each its first and last line. Lists what breaks a rule; exit 1 then.
# Usage: scripts/sizes.sh [dir...]   (default: src)
set -euo pipefail
dirs=("${@:-src}")
command -v ctags >/dev/null && ctags --version 2>/dev/null | grep -q Universal ||
  { echo "sizes.sh: needs Universal Ctags (apt-get install universal-ctags)" >&2; exit 2; }
bad=0
while read -r n f; do
  [ "$f" = total ] && continue
  [ "$n" -gt 700 ] && { echo "$f: $n lines (at most 700)"; bad=1; }
done < <(find "${dirs[@]}" \( -name '*.cc' -o -name '*.h' \) -print0 | xargs -0 wc -l)
long=$(ctags --fields=+ne --c++-kinds=f --output-format=u-ctags -o - -R "${dirs[@]}" 2>/dev/null |
  awk -F'\t' '{ s = 0; e = 0
    for (i = 4; i <= NF; i++) { if ($i ~ /^line:/) s = substr($i, 6); if ($i ~ /^end:/) e = substr($i, 5) }
    if (e - s + 1 > 80) printf "%s:%d: %s is %d lines (at most 80)\n", $2, s, $1, e - s + 1 }')
[ -n "$long" ] && { echo "$long"; bad=1; }
exit $bad
