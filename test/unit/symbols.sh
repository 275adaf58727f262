#!/usr/bin/env bash
# symbols.sh - the shipped archive (priv/libbeamlet.a) exports exactly the public API: every global
# symbol it defines is a function declared in include/beamlet/*.h, and every function declared
# there is defined and global (internal symbols are hidden and localized, see the Makefile).
# Appends "symbols P F" to $BL_RESULTS.
set -u
cd "$(dirname "$0")/../.." || exit 2
P=0 F=0
declared=$(cat include/beamlet/*.h | tr '\n' ' ' | sed 's/;/;\n/g' | grep -v 'typedef' |
    grep -oE '(^|[ *])bl_[a-z0-9_]+ *\(' | grep -oE 'bl_[a-z0-9_]+' | sort -u)
global=$(nm -g --defined-only priv/libbeamlet.a 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBRC]/ {print $3}' | sort -u)
if [ -z "$global" ]; then
    echo "  FAILED: no global symbols in priv/libbeamlet.a (not built?)"; F=1
else
    extra=$(comm -13 <(echo "$declared") <(echo "$global"))
    missing=$(comm -23 <(echo "$declared") <(echo "$global"))
    if [ -z "$extra" ]; then P=$((P + 1)); echo "  ok: $(echo "$global" | wc -l) global symbols, all declared in include/beamlet/"
    else F=$((F + 1)); echo "  FAILED: global but not public: $(echo $extra)"; fi
    if [ -z "$missing" ]; then P=$((P + 1)); echo "  ok: every declared function is exported"
    else F=$((F + 1)); echo "  FAILED: declared but not exported: $(echo $missing)"; fi
fi
[ -n "${BL_RESULTS:-}" ] && echo "symbols $P $F" >>"$BL_RESULTS"
[ "$F" -eq 0 ]
