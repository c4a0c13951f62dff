#!/usr/bin/env bash
# aarch64 instructions per call of every bench_board.py workload, counted under qemu-aarch64 (Debian bookworm x86_64
# host, as root): an arm64 Python 3.11 from Debian's packages, numpy 1.x and OpenCV wheels for aarch64, and the
# instruction-counting TCG plugin of this folder. Each workload runs twice in its own process, once with 1 call and
# once with 11; the difference over 10 is one warm call (start-up and set-up cancel out).
#   bash bench/a53/count_insns.sh [WORK_DIR] > bench/a53/insns.json
set -euo pipefail
work=${1:-/tmp/a53}
here=$(cd "$(dirname "$0")" && pwd)
root=$work/root site=$work/site
mkdir -p "$work"
if [ ! -x "$root/usr/bin/python3.11" ]; then
    command -v qemu-aarch64 >/dev/null || apt-get install -y -q qemu-user >&2
    dpkg --add-architecture arm64 && apt-get update -q >&2
    mkdir -p "$work/debs" "$root"
    (cd "$work/debs" && apt-get download -q $(printf '%s:arm64 ' libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 \
        libffi8 libssl3 libbz2-1.0 liblzma5 libzstd1 libsqlite3-0 libuuid1 libncursesw6 libtinfo6 libreadline8 \
        libcrypt1 libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 \
        libkeyutils1 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3.11) >&2)
    for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$root"; done
fi
if [ ! -d "$site/cv2" ]; then
    pip install -q --target "$site" --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
        numpy==1.26.4 opencv-python-headless==4.10.0.84 pyyaml==6.0.2 scipy==1.13.1 >&2
fi
gcc -O2 -shared -fPIC -o "$work/insn_count.so" "$here/insn_count.c"
count() {  # workload calls -> guest instructions of the whole run
    PYTHONPATH=$site PYTHONHASHSEED=0 qemu-aarch64 -plugin "$work/insn_count.so" -L "$root" \
        "$root/usr/bin/python3.11" "$here/../bench_board.py" --only "$1" --calls "$2" 2>&1 >/dev/null |
        sed -n 's/^guest instructions: //p'
}
names=$(PYTHONPATH=$site qemu-aarch64 -L "$root" "$root/usr/bin/python3.11" "$here/../bench_board.py" --list)
echo "{"
sep=""
for name in $names; do
    one=$(count "$name" 1) eleven=$(count "$name" 11)
    printf '%s  "%s": %s' "$sep" "$name" "$(( (eleven - one) / 10 ))"
    sep=$',\n'
done
printf '\n}\n'
