#!/usr/bin/env bash
# RUSTC_WRAPPER of scripts/fuzz.sh: the project's own crates get LLVM coverage counters
# (the fuzzer's feedback); dependencies are built as usual, so the counters cover only
# Stasis code and stay few enough to scan after every execution.
rustc=$1
shift
name=
prev=
for arg in "$@"; do
  if [[ $prev == --crate-name ]]; then name=$arg; fi
  prev=$arg
done
case $name in
  checker | node | harness) exec "$rustc" "$@" -C instrument-coverage ;;
  stasis_fuzz) exec "$rustc" "$@" -C instrument-coverage --cfg stasis_fuzz_cov ;;
  *) exec "$rustc" "$@" ;;
esac
