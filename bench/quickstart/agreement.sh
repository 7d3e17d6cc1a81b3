#!/usr/bin/env bash
# Compares fresh results with their committed reference using the accuracy regression check
# (two-sided on R@1, NMI and MAP@R, plus the training diagnostics), and says whether they agree
# within the check's tolerance. Used by `make quickstart` and `make power`; exits 0 either way.
#   bash bench/quickstart/agreement.sh HARNESS REFERENCE FRESH ADOPT
# ADOPT: the make target that adopts fresh results as the reference (e.g. quickstart-reference).
set -uo pipefail
H=$1 REF=$2 FRESH=$3 ADOPT=$4
echo
echo "report: $FRESH/report.md"
if [ ! -f "$REF/sweep.json" ]; then
  echo "agreement: no committed reference in $REF to compare with (\`make $ADOPT\` makes one)"
  exit 0
fi
"$H" regress --baseline "$REF" --current "$FRESH" -o "$FRESH/agreement.md" > /dev/null 2>&1; status=$?
if [ $status = 0 ]; then
  echo "agreement: the fresh results agree with the committed reference ($REF) within the regression"
  echo "check's tolerance, in both directions and in the training diagnostics ($FRESH/agreement.md)"
else
  echo "agreement: the fresh results DIFFER from the committed reference ($REF): see $FRESH/agreement.md"
  echo "  (different hardware, thread counts or library versions can move results; a code change that"
  echo "  should not have moved them is a bug; \`make $ADOPT\` adopts them on purpose)"
fi
