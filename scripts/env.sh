# Sourced by the scripts: makes a rustup toolchain visible when PATH lacks it (sudo, CI).
if ! command -v cargo >/dev/null 2>&1; then
  for dir in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
    if [[ -x $dir/cargo ]]; then PATH="$dir:$PATH"; export PATH; break; fi
  done
fi
