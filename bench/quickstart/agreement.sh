#!/usr/bin/env bash
# Compares a fresh quickstart with the committed reference using the accuracy regression check in
# both directions (a drop of the fresh results, and a drop of the reference, i.e. a rise), and says
# whether they agree within the check's tolerance. Used by `make quickstart`; exits 0 either way.
#   bash bench/quickstart/agreement.sh HARNESS REFERENCE FRESH
set -uo pipefail
H=$1 REF=$2 FRESH=$3
"$H" regress --baseline "$REF" --current "$FRESH" -o "$FRESH/agreement-drop.md" > /dev/null 2>&1; drop=$?
"$H" regress --baseline "$FRESH" --current "$REF" -o "$FRESH/agreement-rise.md" > /dev/null 2>&1; rise=$?
echo
echo "report: $FRESH/report.md"
if [ $drop = 0 ] && [ $rise = 0 ]; then
  echo "agreement: the fresh results agree with the committed reference ($REF) within the regression"
  echo "check's tolerance, in both directions ($FRESH/agreement-drop.md, agreement-rise.md)"
else
  echo "agreement: the fresh results DIFFER from the committed reference ($REF):"
  [ $drop != 0 ] && echo "  lower than the reference, or not comparable: $FRESH/agreement-drop.md"
  [ $rise != 0 ] && echo "  higher than the reference, or not comparable: $FRESH/agreement-rise.md"
  echo "  (different hardware, thread counts or library versions can move results; a code change that"
  echo "  should not have moved them is a bug; \`make quickstart-reference\` adopts them on purpose)"
fi
