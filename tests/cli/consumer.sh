#!/bin/sh
# The example consumer (examples/consumer) built against the installed package, as another
# project would: install kforge into a temporary prefix, configure and build the consumer with
# find_package(kforge), write a library with `kforge eval`, and run the consumer on it.
#   consumer.sh CMAKE BUILD_DIR SOURCE_DIR KFORGE WORK_DIR
set -eu
cmake=$1 build=$2 source=$3 kforge=$4 work=$5
rm -rf "$work"
mkdir -p "$work"
"$cmake" --install "$build" --prefix "$work/prefix" >"$work/install.log"
"$cmake" -S "$source/examples/consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
"$cmake" --build "$work/build" -j2 >"$work/build.log" || { cat "$work/build.log"; exit 1; }
tasks=$source/tests/data/tasks
"$kforge" eval --tasks-dir "$tasks" --task tiny/scale --kernel "$tasks/tiny/scale/seeds/cpu_naive.cpp" \
  --db "$work/lib.db" >/dev/null
# N=1024 was tuned (an exact hit); N=7 was not (the baseline, and a miss written to the library).
"$work/build/consumer" "$work/lib.db" "$tasks" 1024
"$work/build/consumer" "$work/lib.db" "$tasks" 7
"$kforge" db stats --db "$work/lib.db" | grep -i miss
