#!/usr/bin/env bash
# e2e (ctest label `spack`): `spack install mpitrain` offline on Debian 12 with Debian's packages as
# externals (spack/environments/debian12), from a copy of this checkout, with a real Spack:
#   1. `spack audit packages mpitrain` and the builtin repository's style check of the recipe
#      (flake8 at 99 columns, isort, black, at spack-packages' pinned versions);
#   2. `spack spec` of mpitrain, mpitrain+tests and mpitrain+cuda cuda_arch=90;
#   3. the install (mpitrain ~tests +apps; only mpitrain is compiled: everything else is external);
#   4. `ldd` of every installed binary and library resolves (no "not found", no LD_LIBRARY_PATH);
#   5. `spack test run mpitrain` (--help, a 2-rank mpirun job, 2 spawned workers, find_package);
#   6. the installed mpitrain-train trains 1 epoch of the MLP on Fashion-MNIST (the built-in data
#      path) with 2 spawned workers.
# Exit 77 (ctest: skipped, shown as such) with the reason when the Spack snapshot
# (../shared/tools/spack-*.tar.xz) is missing or clingo cannot be installed from PyPI.
# The PyPI tools (clingo, flake8, isort, black) are cached in <build dir>/spack-venv.
# Usage: spack_test.sh <source dir> <build dir>
#   env: MPITRAIN_SPACK_SNAPSHOT (the snapshot tarball), MPITRAIN_SPACK_KEEP=1 (keep the temp dir),
#        MPITRAIN_SPACK_UNTIL=spec (stop after 1-2: the recipe checks only, ~3 min, no compiling)
set -uo pipefail
SRC=$(cd "$1" && pwd) || exit 2
BUILD=$(mkdir -p "$2" && cd "$2" && pwd) || exit 2
T0=$SECONDS
skip() { echo "SKIP: $*"; exit 77; }
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
phase() { echo "== $1 (t=$((SECONDS - T0)) s)"; }
# Keep pyenv shims, /usr/local/cuda and the like out: Spack sees Debian's tools only.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset LD_LIBRARY_PATH

# ---- the Spack snapshot and clingo (skip when either is unavailable) ----------------------------
SNAP=${MPITRAIN_SPACK_SNAPSHOT:-}
if [[ -z $SNAP ]]; then
  shopt -s nullglob
  # beside the checkout (the project's layout), else this machine's shared tools (a CI clone
  # may live elsewhere, e.g. under /tmp)
  snaps=("$SRC"/../shared/tools/spack-*.tar.xz)
  ((${#snaps[@]})) || snaps=(/work/shared/tools/spack-*.tar.xz)
  shopt -u nullglob
  ((${#snaps[@]})) && SNAP=${snaps[-1]}
fi
[[ -n $SNAP && -f $SNAP ]] ||
  skip "no Spack snapshot (looked for ${MPITRAIN_SPACK_SNAPSHOT:-$SRC/../shared/tools/spack-*.tar.xz}; Spack is in neither Debian nor PyPI)"
WORK=$(mktemp -d /tmp/mpitrain-spack-test.XXXXXX)
cleanup() { if [[ ${MPITRAIN_SPACK_KEEP:-0} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
phase "unpack $(basename "$SNAP")"
tar -xJf "$SNAP" -C "$WORK" || skip "cannot unpack $SNAP"
[[ -x $WORK/spack/bin/spack && -d $WORK/spack-packages/repos/spack_repo/builtin ]] ||
  skip "$SNAP does not hold spack/ and spack-packages/"
BUILTIN=$WORK/spack-packages/repos/spack_repo/builtin
PYPROJECT=$WORK/spack-packages/pyproject.toml

# The builtin repository's style pins (its CI's requirements), clingo for the concretizer.
pins=$(grep -hE '^(black|flake8|isort)==' "$WORK"/spack-packages/.github/workflows/requirements/style/*.txt 2>/dev/null | sort)
[[ -n $pins ]] || pins=$'black==25.1.0\nflake8==7.2.0\nisort==6.0.1'
reqs=$(printf 'clingo\n%s\n' "$pins")
VENV=$BUILD/spack-venv
if [[ ! -x $VENV/bin/python || $(cat "$VENV/requirements.txt" 2>/dev/null) != "$reqs" ]] ||
  ! "$VENV/bin/python" -c "import clingo" 2>/dev/null; then
  phase "install clingo and the style tools from PyPI into $VENV"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV" || skip "python3 -m venv failed (python3-venv missing?)"
  # shellcheck disable=SC2086
  if ! timeout -k 10 600 "$VENV/bin/pip" install -q --disable-pip-version-check $reqs; then
    rm -rf "$VENV"
    skip "clingo (Spack's concretizer) could not be installed from PyPI (offline?)"
  fi
  echo "$reqs" > "$VENV/requirements.txt"
else
  echo "(cached: $VENV)"
fi

# ---- Spack, offline and self-contained in $WORK -----------------------------------------------
export SPACK_PYTHON=$VENV/bin/python
export SPACK_USER_CONFIG_PATH=$WORK/config/user SPACK_SYSTEM_CONFIG_PATH=$WORK/config/system
export SPACK_USER_CACHE_PATH=$WORK/cache SPACK_DISABLE_LOCAL_CONFIG=1
S=$WORK/spack/bin/spack
cat > "$WORK/spack/etc/spack/config.yaml" <<EOF
config:
  install_tree:
    root: $WORK/opt
  build_stage: [$WORK/stage]
  test_stage: $WORK/test-stage
  source_cache: $WORK/cache/source
  misc_cache: $WORK/cache/misc
  build_jobs: 2
EOF
# The default config names the builtin repository by its git URL (a clone would be tried).
printf 'repos:\n  builtin: %s\n' "$BUILTIN" > "$WORK/spack/etc/spack/repos.yaml"
"$S" bootstrap disable > /dev/null || { echo "FAIL: spack bootstrap disable"; exit 1; }

# A copy of the checkout (tracked and untracked, not ignored files): Spack writes into the
# environment (spack.lock) and the develop source (a build link), never into the checkout.
mkdir -p "$WORK/src"
if git -C "$SRC" rev-parse --git-dir > /dev/null 2>&1; then
  (cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2> /dev/null) | tar -xf - -C "$WORK/src"
else
  tar -C "$SRC" --exclude='./build*' -cf - . | tar -xf - -C "$WORK/src"
fi
ENV=$WORK/src/spack/environments/debian12
[[ -f $ENV/spack.yaml ]] || { echo "FAIL: no $ENV/spack.yaml"; exit 1; }
SE=("$S" -e "$ENV")
RECIPE=packages/mpitrain/package.py

# ---- 1. audit and style -----------------------------------------------------------------------
phase "audit and style"
out=$(timeout -k 10 300 "${SE[@]}" audit packages mpitrain 2>&1); rc=$?
echo "$out" | tail -4
check "spack audit packages mpitrain" '[[ $rc -eq 0 ]]'
cd "$WORK/src/spack" || exit 1
out=$("$VENV/bin/flake8" --max-line-length 99 --extend-ignore E731,E203 \
  --per-file-ignores='*/package.py:F403,F405,F821' "$RECIPE" 2>&1); rc=$?
check "flake8 (99 columns) of the recipe" '[[ $rc -eq 0 ]]'
((rc)) && echo "$out"
out=$("$VENV/bin/isort" --check-only --diff --settings-path "$PYPROJECT" "$RECIPE" 2>&1); rc=$?
check "isort of the recipe" '[[ $rc -eq 0 ]]'
((rc)) && echo "$out"
out=$("$VENV/bin/black" --check --diff --config "$PYPROJECT" "$RECIPE" 2>&1); rc=$?
check "black of the recipe" '[[ $rc -eq 0 ]]'
((rc)) && echo "$out"
cd "$WORK" || exit 1

# ---- 2. specs ---------------------------------------------------------------------------------
n=0
for spec in "mpitrain" "mpitrain+tests" "mpitrain+cuda cuda_arch=90"; do
  phase "spack spec $spec"
  n=$((n + 1))
  # shellcheck disable=SC2086
  timeout -k 10 600 "${SE[@]}" spec -I $spec > "$WORK/spec$n.txt" 2>&1; rc=$?
  check "spack spec $spec concretizes" '[[ $rc -eq 0 ]] && grep -q "mpitrain@main" "$WORK/spec$n.txt"'
  ((rc)) && tail -20 "$WORK/spec$n.txt"
done
echo "-- top of spack spec mpitrain:"
head -16 "$WORK/spec1.txt" | cut -c1-160
check "mpitrain's dependencies are Debian's (externals)" \
  '[[ $(grep -cE "^\[e\]" "$WORK/spec1.txt") -ge 10 ]] && ! grep -E "^ - " "$WORK/spec1.txt" | grep -vqE "\^?(mpitrain|compiler-wrapper|gcc-runtime)@"'
check "mpitrain+tests takes Debian's googletest" 'grep -qE "^\[e\] +\^googletest@1\.12" "$WORK/spec2.txt"'
check "mpitrain+cuda forwards cuda_arch=90 to nccl and py-torch" \
  'grep -qE "\^nccl@.*cuda_arch:?=90" "$WORK/spec3.txt" && grep -qE "\^py-torch@.*\+cuda.*cuda_arch:?=90" "$WORK/spec3.txt"'

if [[ ${MPITRAIN_SPACK_UNTIL:-} == spec ]]; then
  echo "spack test (MPITRAIN_SPACK_UNTIL=spec: no install): $((SECONDS - T0)) s in all"
  exit $fail
fi

# ---- 3. install -------------------------------------------------------------------------------
phase "spack install (builds mpitrain from the copy of the checkout; -j2)"
t=$SECONDS
timeout -k 10 1800 "${SE[@]}" install --fail-fast --no-cache > "$WORK/install.log" 2>&1; rc=$?
echo "(install: $((SECONDS - t)) s)"
built=$(grep -oE "Installing [a-z0-9-]+-[^ ]+-[a-z0-9]{32}" "$WORK/install.log" | sed -E 's/Installing ([a-z0-9-]+)-[^-]+-[a-z0-9]{32}/\1/' | sort -u | tr '\n' ' ')
echo "built from source: $built"
check "spack install mpitrain" '[[ $rc -eq 0 ]]'
((rc)) && tail -60 "$WORK/install.log"
check "only mpitrain (and Spack's compiler-wrapper, gcc-runtime) built" \
  '[[ -n $built && -z $(tr " " "\n" <<< "$built" | grep -vxE "mpitrain|compiler-wrapper|gcc-runtime|") ]]'
PREFIX=$("${SE[@]}" location -i mpitrain 2> /dev/null)
if ((rc)) || [[ ! -x $PREFIX/bin/mpitrain-train ]]; then
  echo "FAIL: no installed mpitrain-train; stopping (t=$((SECONDS - T0)) s)"
  exit 1
fi
echo "prefix: $PREFIX"

# ---- 4. RPATHs --------------------------------------------------------------------------------
phase "ldd of the installed binaries and libraries"
nelf=0 missing=""
while IFS= read -r -d '' f; do
  [[ $(head -c 4 "$f" | od -An -c | tr -d ' ') == 177ELF ]] || continue
  nelf=$((nelf + 1))
  nf=$(ldd "$f" 2>&1 | grep "not found")
  [[ -n $nf ]] && missing+="$f: $nf"$'\n'
done < <(find "$PREFIX" -type f \( -perm -u+x -o -name '*.so*' \) -print0)
echo "$nelf ELF files"
check "every installed ELF file resolves its libraries (ldd: no \"not found\")" '[[ $nelf -ge 10 && -z $missing ]]'
[[ -n $missing ]] && echo "$missing"
rp=$(readelf -d "$PREFIX/bin/mpitrain-train" | grep -E "RUNPATH|RPATH")
echo "mpitrain-train $rp"
check "mpitrain-train's RPATH holds Spack's prefix/lib and \$ORIGIN/../lib" \
  '[[ $rp == *"$PREFIX/lib"* && $rp == *"\$ORIGIN/../lib"* ]]'
check "libexec/mpitrain/mpitrain-leader installed" '[[ -x $PREFIX/libexec/mpitrain/mpitrain-leader ]]'

# ---- 5. spack test run --------------------------------------------------------------------------
phase "spack test run mpitrain"
out=$(cd "$WORK" && timeout -k 10 900 "${SE[@]}" test run --alias ci mpitrain 2>&1); rc=$?
res=$(timeout -k 10 120 "${SE[@]}" test results -l ci 2>&1)
grep -E "^Mpitrain::test_|passed of|failed of" <<< "$res"
npass=$(grep -oE "PASSED: Mpitrain::test_[a-z_]+" <<< "$res" | sort -u | wc -l)
check "spack test run mpitrain: 4 tests passed" '[[ $rc -eq 0 && $npass -eq 4 ]] && ! grep -q "FAILED" <<< "$res"'
[[ $rc -ne 0 || $npass -ne 4 ]] && { tail -20 <<< "$out"; tail -80 <<< "$res"; }

# ---- 6. the installed mpitrain-train: 1 epoch of the MLP, 2 spawned workers ----------------------
phase "installed mpitrain-train --workers 2 --epochs 1"
. "$SRC/scripts/mpi-env.sh"
out=$(cd "$WORK" && timeout -k 10 900 "$PREFIX/bin/mpitrain-train" --workers 2 --epochs 1 \
  --output-dir "$WORK/run" 2>&1); rc=$?
summary=$(grep '^mpitrain-train: {' <<< "$out" | tail -1)
echo "${summary:-$(tail -20 <<< "$out")}"
acc=$(grep -oE '"test_accuracy":[0-9.eE+-]+' <<< "$summary" | cut -d: -f2)
check "installed mpitrain-train: MLP, Fashion-MNIST (built-in data path), 2 workers, 1 epoch" \
  '[[ $rc -eq 0 && $summary == *"\"dataset\":\"fashion-mnist\""* && $summary == *"\"model\":\"mlp\""* && $summary == *"\"workers\":2"* && $summary == *"\"epochs\":1"* ]]'
check "test accuracy ${acc:-?} >= 0.75" '[[ -n $acc ]] && awk -v a="$acc" "BEGIN { exit !(a >= 0.75) }"'
check "metrics.csv written" '[[ -n $(find "$WORK/run" -name metrics.csv -size +0 2> /dev/null) ]]'

echo "spack test: $((SECONDS - T0)) s in all"
exit $fail
