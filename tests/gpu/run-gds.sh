#!/usr/bin/env bash
# The GDS checks and the GDS figures of docs/BENCHMARKS.md, on a machine with a GPU and
# libcufile (the nvidia-fs module is not needed: cuFile then runs in compatibility mode):
#   1. tests/gpu/test_gds (GDS and GDS_MT: VRAM and DRAM to files and back, O_DIRECT, errors);
#   2. nixlbench on one file, same block sizes, READ and WRITE, in this one run: GDS and GDS_MT
#      with VRAM, GDS with DRAM, POSIX with DRAM, the DRAM<->VRAM copy (nixlbench SHM), POSIX
#      plus that copy (computed: the two run one after the other), and the disk's ceiling on
#      the same file (fio when installed, else dd with O_DIRECT);
#   3. a markdown table of it all.
# It builds nothing: run it from the source tree after `ninja -C BUILD_DIR`.
#
#   tests/gpu/run-gds.sh BUILD_DIR [DIR]    DIR: where the files go (default $NIXL_GDS_TEST_DIR
#                                           or /tmp; a disk file system for O_DIRECT)
# REPEATS (default 3): sweeps per cell; the table gives the median and, in brackets, the lowest
# and highest. fio is looked for on PATH and in build-devdeps/bin (scripts/device-deps.sh
# stage-fio builds a static one to carry to a machine without it).
# Exit 0 when everything ran and passed, 1 on any failure, 77 without a GPU or libcufile.
# Takes about 4 minutes.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${1:?usage: tests/gpu/run-gds.sh BUILD_DIR [DIR]}
DIR=${2:-${NIXL_GDS_TEST_DIR:-/tmp}}
NB=$BUILD/tools/nixlbench/nixlbench
[ -x "$NB" ] || { echo "run-gds: $NB is missing: build first" >&2; exit 1; }
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "run-gds: no NVIDIA GPU here: nothing to run"; exit 77
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libcufile\.so'; then
  echo "run-gds: no libcufile here: nothing to run"; exit 77
fi
REPEATS=${REPEATS:-3}
[ -x build-devdeps/bin/fio ] && PATH=$PATH:$PWD/build-devdeps/bin
export NIXL_PLUGIN_DIR=${NIXL_PLUGIN_DIR:-$PWD/$BUILD/tests/plugins}
export NIXL_CONFIG_FILE=$PWD/tests/data/empty.cfg
rc=0
say() { printf '%s\n' "$*"; }

say "== environment"
nvidia-smi -L
ldconfig -p | grep -m2 'libcufile\.so'
say "nvidia-fs module: $( [ -e /sys/module/nvidia_fs ] && echo loaded || echo 'absent (cuFile compatibility mode)')"
say "cuFile config: ${CUFILE_ENV_PATH_JSON:-/etc/cufile.json}: $(grep -o '"allow_compat_mode"[^,]*' "${CUFILE_ENV_PATH_JSON:-/etc/cufile.json}" 2>/dev/null || echo 'no allow_compat_mode line (default true)')"
say "files in: $DIR ($(df -T "$DIR" 2>/dev/null | awk 'NR==2 {print $2 ", " $5 " free"}'))"
probe=$DIR/nixl-gds-probe.$$
DIRECT=--storage_enable_direct
if dd if=/dev/zero of="$probe" bs=4096 count=1 oflag=direct 2>/dev/null; then
  say "O_DIRECT: works in $DIR (the runs below use it)"
else
  DIRECT=; say "O_DIRECT: refused in $DIR: the runs below go through the page cache"
fi
rm -f "$probe"

say "== tests: NIXL_GDS_TEST_DIR=$DIR $BUILD/tests/gpu/test_gds"
rm -f cufile.log
# The whole output goes to a file (in $OUT when set); here its failures and its last lines.
log=${OUT:-$DIR}/test_gds.log
NIXL_GDS_TEST_DIR=$DIR NIXL_LOG_LEVEL=INFO timeout 150 "$BUILD/tests/gpu/test_gds" >"$log" 2>&1
t=$?
grep -v ' nixl INFO: ' "$log" | tail -60
say "(the whole output: $log)"
[ "$t" -eq 0 ] || { say "test_gds: exit $t"; rc=1; }
# cuFile writes its reasons to ./cufile.log. Seen on the accelerator VMs: no udev data for the
# disk, so cuFileHandleRegister fails (5027) on every file; say how to get past it.
if grep -q "udev property not found" cufile.log 2>/dev/null; then
  say "cufile.log: cuFile finds no udev data for the disk, so it cannot register files there."
  say "  On a VM without udev: mkdir -p /run/udev/data; printf 'E:ID_FS_USAGE=filesystem\\nE:ID_FS_TYPE=ext4\\n' > /run/udev/data/b<major>:<minor>"
  say "  (the disk's numbers: stat -c '%Hd:%Ld' $DIR), then run this again."
fi

say "== figures"
FILE=nixl-gds-bench.dat
BLOCKS="65536 1048576 16777216"
BATCH=4
COMMON=(--filepath "$DIR" --filenames "$FILE" --total_buffer_size 268435456 --start_batch_size $BATCH
        --max_batch_size $BATCH --num_iter 200 --warmup_iter 20 --large_blk_iter_ftr 16)
declare -A BW
# run LABEL OP ARGS...: REPEATS nixlbench sweeps over BLOCKS; the B/W column's samples are
# appended to BW[LABEL,OP,block] (space separated), cell() turns them into "median (lo-hi)".
run() {
  local label=$1 op=$2; shift 2
  local args=("$@" --op_type "$op" --start_block_size 65536 --max_block_size 16777216)
  say "\$ nixlbench ${args[*]}   (x$REPEATS)"
  local rep
  for ((rep = 0; rep < REPEATS; rep++)); do
    local out; out=$(timeout 60 "$NB" "${args[@]}" 2>&1); local st=$?
    if [ $st -ne 0 ]; then
      say "  failed (exit $st): $(printf '%s\n' "$out" | tail -2 | tr '\n' ' ')"; rc=1; return
    fi
    while read -r blk batch bw _; do
      BW[$label,$op,$blk]="${BW[$label,$op,$blk]:-} $bw"
    done < <(printf '%s\n' "$out" | awk -v want="$BLOCKS" 'BEGIN{split(want,w," "); for(i in w) ok[w[i]]=1} $1 in ok && NF>=3 {print $1, $2, $3}')
  done
}
# "median (lo-hi)" of samples, "-" for none; median() alone for arithmetic.
median() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END {if (NR) printf "%.3f", (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
cell() {
  [ -n "${1// /}" ] || { printf -- '-'; return; }
  printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END {m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2;
    if (NR > 1) printf "%.2f (%.2f-%.2f)", m, v[1], v[NR]; else printf "%.2f", m}'
}
for op in WRITE READ; do
  run GDS_VRAM $op --backend GDS "${COMMON[@]}" $DIRECT --initiator_seg_type VRAM --check_consistency
  run GDS_MT_VRAM $op --backend GDS_MT --gds_mt_num_threads 8 "${COMMON[@]}" $DIRECT --initiator_seg_type VRAM --check_consistency
  run GDS_DRAM $op --backend GDS "${COMMON[@]}" $DIRECT --check_consistency
  run POSIX_DRAM $op --backend POSIX --posix_api_type URING "${COMMON[@]}" $DIRECT --check_consistency
done
# The copy POSIX needs to reach the GPU: DRAM -> VRAM after a READ, VRAM -> DRAM before a WRITE
# (nixlbench SHM in one process pair, the same block and batch sizes).
run COPY READ --backend SHM --initiator_seg_type VRAM --target_seg_type DRAM --total_buffer_size 268435456 \
  --start_batch_size $BATCH --max_batch_size $BATCH --num_iter 200 --warmup_iter 20
run COPY WRITE --backend SHM --initiator_seg_type VRAM --target_seg_type DRAM --total_buffer_size 268435456 \
  --start_batch_size $BATCH --max_batch_size $BATCH --num_iter 200 --warmup_iter 20

# The disk's ceiling on the same file: fio, else dd (one stream, O_DIRECT when it works).
ceiling() {
  local op=$1 bs=$2 f=$DIR/$FILE size=$((256 << 20))
  if command -v fio >/dev/null; then
    local rw=read; [ "$op" = WRITE ] && rw=write
    say "\$ fio --name=ceiling --filename=$f --rw=$rw --bs=$bs --size=$size --iodepth=$BATCH --ioengine=libaio --direct=$([ -n "$DIRECT" ] && echo 1 || echo 0)" >&2
    fio --name=ceiling --filename="$f" --rw=$rw --bs="$bs" --size=$size --iodepth=$BATCH \
      --ioengine=libaio --direct=$([ -n "$DIRECT" ] && echo 1 || echo 0) --output-format=json 2>/dev/null |
      python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; k=sys.argv[1]; print("%.3f" % (j[k]["bw_bytes"]/1e9))' "$rw"
  else
    local flag=; [ -n "$DIRECT" ] && flag=direct
    local cmd
    if [ "$op" = WRITE ]; then cmd=(dd if=/dev/zero of="$f" bs="$bs" count=$((size / bs)) ${flag:+oflag=$flag} conv=notrunc)
    else cmd=(dd if="$f" of=/dev/null bs="$bs" count=$((size / bs)) ${flag:+iflag=$flag}); fi
    say "\$ ${cmd[*]}" >&2
    "${cmd[@]}" 2>&1 | awk '/copied/ {for(i=1;i<=NF;i++) if($(i+1) ~ /^s,?$/) s=$i; printf "%.3f\n", $1/s/1e9}'
  fi
}
for op in WRITE READ; do
  for b in $BLOCKS; do
    for ((rep = 0; rep < REPEATS; rep++)); do BW[DISK,$op,$b]="${BW[DISK,$op,$b]:-} $(ceiling $op $b)"; done
  done
done
rm -f "$DIR/$FILE"

say ""
say "GB/s (decimal): median of $REPEATS sweeps (lowest-highest); block x $BATCH descriptors per request, one file in $DIR${DIRECT:+, O_DIRECT}; the disk ceiling: $(command -v fio >/dev/null && echo "fio, libaio, iodepth $BATCH" || echo "dd, one stream")"
say ""
say "| op | block | GDS VRAM | GDS_MT VRAM | GDS DRAM | POSIX DRAM | DRAM<->VRAM copy | POSIX + copy | disk ceiling |"
say "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for op in WRITE READ; do
  for b in $BLOCKS; do
    p=$(median "${BW[POSIX_DRAM,$op,$b]:-}"); c=$(median "${BW[COPY,$op,$b]:-}"); pc=-
    [ -n "$p" ] && [ -n "$c" ] && pc=$(awk -v p="$p" -v c="$c" 'BEGIN{ if (p>0 && c>0) printf "%.2f", 1/(1/p+1/c); else print "-" }')
    say "| $op | $((b / 1024)) KiB | $(cell "${BW[GDS_VRAM,$op,$b]:-}") | $(cell "${BW[GDS_MT_VRAM,$op,$b]:-}") | $(cell "${BW[GDS_DRAM,$op,$b]:-}") | $(cell "${BW[POSIX_DRAM,$op,$b]:-}") | $(cell "${BW[COPY,$op,$b]:-}") | $pc | $(cell "${BW[DISK,$op,$b]:-}") |"
  done
done
say ""
say "run-gds: exit $rc"
exit $rc
