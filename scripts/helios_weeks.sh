#!/usr/bin/env bash
# Splits a Helios cluster directory at an instant, for choosing constants on the first part and
# reporting them on the second (docs/sim.md, "No tuning to one month"):
#   scripts/helios_weeks.sh data/helios_earth_2020_05 "2020-05-15 00:00:00" /tmp/w12 /tmp/w34
# FIRST gets the rows before the instant; SECOND gets, per VC, the row in force at the instant
# (re-stamped to it) followed by the rows from it on. Both get the *_gpu_number.csv file.
set -euo pipefail
src=$1 at=$2 first=$3 second=$4
seq=$(ls "$src"/*_vc_sequence*.csv)
mkdir -p "$first" "$second"
cp "$src"/*_gpu_number.csv "$first"/ && cp "$src"/*_gpu_number.csv "$second"/
name=$(basename "$seq")
awk -F, -v at="$at" 'NR == 1 || $2 < at' "$seq" >"$first/$name"
awk -F, -v OFS=, -v at="$at" '
  function restamped(row,   n, f, s, i) { n = split(row, f, ","); s = f[1] OFS at; for (i = 3; i <= n; i++) s = s OFS f[i]; return s }
  NR == 1 { print; next }
  $2 < at { last[$1] = $0; next }
  {
    if (($1 in last) && $2 > at) print restamped(last[$1])
    delete last[$1]
    print
  }
  END { for (vc in last) print restamped(last[vc]) }
' "$seq" >"$second/$name.unsorted"
# The reader wants each VC's rows in time order; sort by VC then time, header first.
{ head -1 "$second/$name.unsorted"; tail -n +2 "$second/$name.unsorted" | sort -t, -k1,1 -k2,2 -s; } >"$second/$name"
rm "$second/$name.unsorted"
