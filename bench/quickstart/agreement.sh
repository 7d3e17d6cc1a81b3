#!/usr/bin/env bash
# Compares a fresh quickstart with the committed reference using the accuracy regression check
# (two-sided on R@1, NMI and MAP@R, plus the training diagnostics), and says whether they agree
# within the check's tolerance. Used by `make quickstart`; exits 0 either way.
#   bash bench/quickstart/agreement.sh HARNESS REFERENCE FRESH
set -uo pipefail
H=$1 REF=$2 FRESH=$3
"$H" regress --baseline "$REF" --current "$FRESH" -o "$FRESH/agreement.md" > /dev/null 2>&1; status=$?
echo
echo "report: $FRESH/report.md"
if [ $status = 0 ]; then
  echo "agreement: the fresh results agree with the committed reference ($REF) within the regression"
  echo "check's tolerance, in both directions and in the training diagnostics ($FRESH/agreement.md)"
else
  echo "agreement: the fresh results DIFFER from the committed reference ($REF): see $FRESH/agreement.md"
  echo "  (different hardware, thread counts or library versions can move results; a code change that"
  echo "  should not have moved them is a bug; \`make quickstart-reference\` adopts them on purpose)"
fi
