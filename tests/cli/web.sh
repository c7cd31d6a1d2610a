#!/usr/bin/env bash
# kforge serve and kforge report against libraries made by short offline searches, in three modes:
#   api      the JSON against the library (sqlite3), the read-only server (405s, the file unchanged)
#   browser  headless Chromium loads every page: the curve has a point per evaluation, the tree a
#            node per kernel, no script or console error, sources highlighted; a kernel, compiler
#            log, prompt and reply holding <script> show as text and run nothing; the static report
#            browses the same from file://. Screenshots are kept in WORK/screens/.
#   live     a task page reloaded while a search writes shows the new evaluations.
# Servers and browsers are started with timeouts and stopped by pid, also when a check fails;
# Chromium keeps its profile under WORK and avoids /dev/shm (small in containers).
set -eu
mode=$1 kforge=$2 work=$3 tasks=$4
rm -rf "$work"
mkdir -p "$work/screens"
db=$work/k.db
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null && kill -CONT "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
q() { sqlite3 "$db" "$1"; }

# A server on a free port; sets $base.
start_server() {
  timeout 600 "$kforge" serve --db "$1" --port 0 >"$work/serve.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q "http://" "$work/serve.out" 2>/dev/null && break
    sleep 0.1
  done
  base=$(grep -o 'http://[0-9.:]*' "$work/serve.out") || fail "the server did not start: $(cat "$work/serve.out")"
}
get() { curl -sS --max-time 30 "$base/$1"; }
# A JSON value: json PATH-IN-DOC FILE.
json() { sqlite3 :memory: "SELECT json_extract(readfile('$2'), '$1')"; }

# Chromium, headless, with our scripts run; the DOM after load in $work/dom.html, its console
# messages in $work/console.txt. A screenshot too when a name is given.
browse() {
  local url=$1 shot=${2:-}
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$work/chromium" --enable-logging=stderr \
    --v=0 --virtual-time-budget=3000 --window-size=1400,1000 --dump-dom "$url" >"$work/dom.html" 2>"$work/chromium.err" ||
    fail "chromium failed on $url: $(tail -3 "$work/chromium.err")"
  # Debian's highlight.js 9.18 logs an end-of-life notice on load: the one message allowed.
  grep 'CONSOLE' "$work/chromium.err" | grep -v 'Version 9 of Highlight.js has reached EOL' >"$work/console.txt" || true
  grep -q 'data-kforge-ready="1"' "$work/dom.html" || fail "$url: the page's script did not run"
  ! grep -q 'class="js-error"' "$work/dom.html" || fail "$url: script error: $(grep -o 'class="js-error">[^<]*' "$work/dom.html")"
  [ ! -s "$work/console.txt" ] || fail "$url: console messages: $(cat "$work/console.txt")"
  if [ -n "$shot" ]; then
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$work/chromium" --hide-scrollbars \
      --virtual-time-budget=3000 --window-size=1400,1000 --screenshot="$work/screens/$shot.png" "$url" >/dev/null 2>&1 ||
      fail "no screenshot of $url"
  fi
}
count() { grep -o "$1" "$work/dom.html" | wc -l; }

# Every href and src of every page a report wrote names a file it wrote (or an anchor in the page);
# sets $crawled to how many pages it read.
crawl() {
  local dir=$1 page target
  crawled=0
  for page in "$dir"/*.html; do
    crawled=$((crawled + 1))
    for target in $(grep -o -E '(href|src)="[^"]*"' "$page" | cut -d'"' -f2 | sort -u); do
      case $target in
        '#'*) continue ;;
        '' | /* | *:*) fail "report $dir: $(basename "$page") links out of the report: '$target'" ;;
      esac
      [ -f "$dir/${target%%#*}" ] || fail "report $dir: $(basename "$page") links to $target, which it did not write"
    done
  done
}

search() {  # search DB EVALS [more options]
  local d=$1 n=$2
  shift 2
  "$kforge" --tasks-dir "$tasks" search --suite search --evals "$n" --db "$d" "$@" >"$work/search.out" 2>&1
}

# Page names, as the site encodes keys (encode_name: [A-Za-z0-9.] kept, others _XX).
enc() { local s=$1 out="" c i; for ((i = 0; i < ${#s}; i++)); do c=${s:i:1}; case $c in [A-Za-z0-9.]) out+=$c ;; *) out+=$(printf '_%02X' "'$c") ;; esac; done; echo "$out"; }

if [ "$mode" = live ]; then
  search "$db" 3 || fail "the first search failed: $(cat "$work/search.out")"
  start_server "$db"
  "$kforge" --tasks-dir "$tasks" search --suite search --evals 40 --seed 7 --db "$db" >"$work/search2.out" 2>&1 &
  searcher=$!
  pids+=($searcher)
  run=""
  for _ in $(seq 600); do  # the new run's first evaluations
    run=$(q "SELECT run_id FROM run WHERE ended_at IS NULL") || true
    [ -n "$run" ] && [ "$(q "SELECT count(*) FROM evaluation WHERE run_id = '$run'")" -ge 2 ] && break
    sleep 0.1
  done
  [ -n "$run" ] || fail "the second search never started"
  page="$base/task-$(enc "$run")-$(enc search/scale).html"
  # The search is held (SIGSTOP) while the page loads: a fast machine would otherwise end it first.
  kill -STOP "$searcher"
  browse "$page"
  first=$(count 'class="eval ')
  grep -q 'http-equiv="refresh"' "$work/dom.html" || fail "a running search's page does not refresh itself"
  kill -CONT "$searcher"
  timeout 300 tail --pid="$searcher" -f /dev/null || fail "the second search did not end"
  wait "$searcher" || fail "the second search failed: $(tail -3 "$work/search2.out")"
  browse "$page"
  second=$(count 'class="eval ')
  want=$(q "SELECT count(*) FROM evaluation WHERE run_id = '$run'")
  [ "$first" -ge 2 ] && [ "$second" -gt "$first" ] && [ "$second" -eq "$want" ] ||
    fail "points while the search ran: $first, after: $second, evaluations: $want"
  ! grep -q 'http-equiv="refresh"' "$work/dom.html" || fail "an ended run's page still refreshes"
  echo "live: $first points while the search wrote, $second after ($want evaluations)"
  exit 0
fi

search "$db" 8 || fail "the search failed: $(cat "$work/search.out")"
run=$(q "SELECT run_id FROM run")
task=search/scale
task_page="task-$(enc "$run")-$(enc $task)"
counts() {
  evaluations=$(q "SELECT count(*) FROM evaluation e JOIN kernel k USING(kernel_key) WHERE e.run_id = '$run' AND k.task = '$task'")
  kernels=$(q "SELECT count(DISTINCT kernel_key) FROM evaluation e JOIN kernel k USING(kernel_key) WHERE e.run_id = '$run' AND k.task = '$task'")
}
counts
kernel=$(q "SELECT kernel_key FROM kernel WHERE parent_key <> '' LIMIT 1")
device=$(q "SELECT device_key FROM device LIMIT 1")

if [ "$mode" = api ]; then
  sum=$(sha256sum <"$db")
  start_server "$db"
  for page in index library "run-$(enc "$run")" "$task_page" "kernel-$(enc "$kernel")" "device-$(enc "$device")"; do
    get "api/$page.json" >"$work/$page.json" || fail "GET api/$page.json"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/$page.html")" = 200 ] || fail "GET $page.html"
  done
  j=$work/index.json
  [ "$(json '$.runs[0].run_id' "$j")" = "$run" ] || fail "index: run id"
  [ "$(json '$.runs[0].evaluations' "$j")" -eq "$(q "SELECT count(*) FROM evaluation WHERE run_id = '$run'")" ] || fail "index: evaluations"
  [ "$(json '$.runs[0].correct' "$j")" -eq "$(q "SELECT count(*) FROM evaluation WHERE run_id = '$run' AND status = 'ok'")" ] || fail "index: correct"
  [ "$(json '$.runs[0].status' "$j")" = ended ] || fail "index: status"
  [ "$(json '$.runs[0].tasks[0].task' "$j")" = "$task" ] || fail "index: task"
  j=$work/$task_page.json
  [ "$(sqlite3 :memory: "SELECT json_array_length(readfile('$j'), '$.evaluations')")" -eq "$evaluations" ] || fail "task: evaluations"
  [ "$(sqlite3 :memory: "SELECT json_array_length(readfile('$j'), '$.kernels')")" -eq "$kernels" ] || fail "task: kernels"
  [ "$(sqlite3 :memory: "SELECT json_array_length(readfile('$j'), '$.best_so_far')")" -eq "$evaluations" ] || fail "task: best_so_far"
  [ "$(sqlite3 :memory: "SELECT json_array_length(readfile('$j'), '$.islands')")" -eq 4 ] || fail "task: islands"
  best=$(q "SELECT max(e.speedup) FROM evaluation e WHERE e.run_id = '$run' AND e.status = 'ok' AND e.verified")
  [ "$(json "\$.best_so_far[$((evaluations - 1))]" "$j")" = "$best" ] || fail "task: best so far ends at $(json "\$.best_so_far[$((evaluations - 1))]" "$j"), not $best"
  j=$work/kernel-$(enc "$kernel").json
  [ "$(json '$.kernel_key' "$j")" = "$kernel" ] || fail "kernel: key"
  [ "$(json '$.source' "$j")" = "$(q "SELECT source FROM kernel WHERE kernel_key = '$kernel'")" ] || fail "kernel: source"
  [ "$(sqlite3 :memory: "SELECT json_array_length(readfile('$j'), '$.evaluations')")" -eq "$(q "SELECT count(*) FROM evaluation WHERE kernel_key = '$kernel'")" ] || fail "kernel: evaluations"
  [ -n "$(json '$.parent.source' "$j")" ] || fail "kernel: parent"
  [ "$(sqlite3 :memory: "SELECT json_array_length(readfile('$work/library.json'), '$.best')")" -eq "$(q "SELECT count(*) FROM best")" ] || fail "library: best"
  [ "$(sqlite3 :memory: "SELECT json_array_length(readfile('$work/device-$(enc "$device").json'), '$.kernels')")" -eq "$(q "SELECT count(*) FROM best WHERE device_key = '$device'")" ] || fail "device: kernels"
  # Unknown things are 404s; nothing but GET and HEAD is accepted.
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/kernel-nope.html")" = 404 ] || fail "unknown kernel"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/api/../../etc/passwd")" = 404 ] || fail "a path out of the site"
  for method in POST PUT PATCH DELETE; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X $method -d '{}' "$base/api/index.json")
    [ "$code" = 405 ] || fail "$method answered $code"
  done
  curl -sSI "$base/" | grep -qi "content-security-policy: default-src 'self'; script-src 'self'" || fail "no CSP"
  [ "$(sha256sum <"$db")" = "$sum" ] || fail "the library file changed"
  # A bad --db: one line, exit 2.
  for bad in "$work/none.db" "$work/serve.out"; do
    set +e; out=$("$kforge" serve --db "$bad" --port 0 2>&1); code=$?; set -e
    [ $code -eq 2 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "serve --db $bad: exit $code: $out"
  done
  set +e; out=$("$kforge" report --db "$db" --run nope --out "$work/report" 2>&1); code=$?; set -e
  [ $code -eq 2 ] && [ "$out" = "kforge: --run: no run nope in this library" ] || fail "report --run nope: exit $code: $out"
  "$kforge" report --db "$db" --out "$work/report" | grep -q "pages in" || fail "report"
  [ -f "$work/report/$task_page.html" ] && [ -f "$work/report/api/$task_page.json" ] || fail "report: no task page"
  [ "$(sha256sum <"$db")" = "$sum" ] || fail "the library file changed"
  # A second run that re-evaluates kernels the first made: a report of either run alone, and of
  # both, links only to pages it wrote.
  search "$db" 6 --seed 7 || fail "the second search failed: $(cat "$work/search.out")"
  for r in $(q "SELECT run_id FROM run"); do
    "$kforge" report --db "$db" --run "$r" --out "$work/report-$r" >/dev/null || fail "report --run $r"
    crawl "$work/report-$r"
    [ -f "$work/report-$r/task-$(enc "$r")-$(enc $task).html" ] || fail "report --run $r: no task page"
    echo "report --run $r: $crawled pages, no dangling link"
  done
  rm -rf "$work/report"
  "$kforge" report --db "$db" --out "$work/report" >/dev/null || fail "report"
  crawl "$work/report"
  echo "report: $crawled pages, no dangling link"
  echo "api: $evaluations evaluations, $kernels kernels, read-only"
  exit 0
fi

[ "$mode" = browser ] || fail "unknown mode $mode"
# A kernel that names <script> in its source, its compiler's output, the prompt and the reply of
# the LLM call that made it: stored as a search stores them (its run, operator, call), and shown
# as text only.
payload="<script>document.documentElement.setAttribute('pwned','yes')</script>"
cat >"$work/xss.cpp" <<EOF
// @kforge entry: scale_f32
// @kforge about: $payload </code></pre><img src=x onerror="document.documentElement.setAttribute('pwned','img')">
extern "C" void scale_f32(const float* x, float* y, int N, float alpha) {
  for (int i = 0; i < N; ++i) y[i] = alpha * x[i];
}
EOF
"$kforge" --tasks-dir "$tasks" eval --task search/scale --kernel "$work/xss.cpp" --db "$db" >/dev/null
xss=$(q "SELECT kernel_key FROM kernel WHERE source LIKE '%pwned%'")
sql_payload=${payload//\'/\'\'}
q "UPDATE kernel SET operator = 'llm_rewrite', run_id = '$run', parent_key = '$kernel' WHERE kernel_key = '$xss';
   UPDATE evaluation SET run_id = '$run', log = 'warning: $sql_payload' WHERE kernel_key = '$xss';
   INSERT INTO llm_call(call_key, run_id, model, endpoint, request, response, prompt_tokens, completion_tokens,
                        cost_usd, latency_ms, status, created_at, provider)
   SELECT 'xss-call', '$run', 'model<b>', 'fake',
          json_object('messages', json_array(json_object('role', 'user', 'content', 'Make it faster $sql_payload'))),
          json_object('choices', json_array(json_object('message', json_object('content',
            'Here: $sql_payload' || char(10) || '\`\`\`cpp' || char(10) || source || '\`\`\`' || char(10))))),
          10, 20, 0.001, 5, 'ok', '2000-01-01T00:00:00.000Z', 'openai'
   FROM kernel WHERE kernel_key = '$xss';"
counts

start_server "$db"
browse "$base/" runs
grep -q "$run" "$work/dom.html" || fail "the runs page does not list the run"
browse "$base/run-$(enc "$run").html" run
browse "$base/library.html" library
browse "$base/$task_page.html" task
[ "$(count 'class="eval ')" -eq "$evaluations" ] || fail "task: $(count 'class="eval ') points, $evaluations evaluations"
[ "$(count 'class="node"')" -eq "$kernels" ] || fail "task: $(count 'class="node"') tree nodes, $kernels kernels"
[ "$(count '<polyline class="best"')" -eq 1 ] || fail "task: no best-so-far line"
[ "$(count 'class="elite"')" -ge 4 ] || fail "task: no MAP-Elites cells"
browse "$base/kernel-$(enc "$kernel").html" kernel
grep -q 'data-highlighted="1"' "$work/dom.html" || fail "kernel: the source is not highlighted"
grep -q 'class="add"' "$work/dom.html" || fail "kernel: no diff against the parent"
browse "$base/device-$(enc "$device").html" roofline
[ "$(count 'class="roof-point"')" -eq "$(q "SELECT count(*) FROM best WHERE device_key = '$device'")" ] || fail "roofline: points"
# The roof is the evaluator's own measurement of this machine, filed with the device's row.
[ "$(q "SELECT bandwidth_gbps > 0 AND peak_gflops > 0 FROM device WHERE device_key = '$device'")" = 1 ] ||
  fail "device: no measured bandwidth and peak: $(q "SELECT * FROM device")"
[ "$(count 'class="roof"')" -eq 1 ] || fail "roofline: the roof (bandwidth slope, then peak) is not drawn"
browse "$base/kernel-$(enc "$xss").html" xss
! grep -q "pwned=" "$work/dom.html" || fail "a stored <script> ran"
! grep -qi "<script>document" "$work/dom.html" || fail "a stored <script> is an element"
! grep -qi "<img src" "$work/dom.html" || fail "a stored <img> is an element"
[ "$(count '&lt;script&gt;document.documentElement')" -ge 5 ] ||
  fail "the source, diff, log, prompt and reply do not all show the <script> as text"
grep -q "The LLM call that made it" "$work/dom.html" || fail "the kernel's LLM call is not found"
grep -q "model&lt;b&gt;" "$work/dom.html" || fail "the model name is not escaped"

# The static report: the same pages from file://, links relative.
"$kforge" report --db "$db" --run "$run" --out "$work/report" >/dev/null
browse "file://$work/report/$task_page.html"
[ "$(count 'class="eval ')" -eq "$evaluations" ] || fail "report: points"
for target in $(grep -o 'href="[^"]*"' "$work/report/$task_page.html" "$work/report/index.html" | cut -d'"' -f2 | sort -u); do
  [ -f "$work/report/$target" ] || fail "report: broken link $target"
done
browse "file://$work/report/kernel-$(enc "$xss").html"
! grep -q "pwned=" "$work/dom.html" || fail "report: a stored <script> ran"
echo "browser: every page loaded, $evaluations points, $kernels nodes, screenshots in $work/screens"
