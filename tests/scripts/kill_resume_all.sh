#!/usr/bin/env bash
# ctest-labels: slow
# Kill-resume for every mixer and optimizer (docs/reliability.md): for each of the 25 pairs of
# mixer (attention, GLA, DeltaNet, DeltaProduct, gated DeltaProduct) x optimizer (AdamW, Muon,
# SOAP, M-FAC, DCT-AdamW), a tiny trial is run uninterrupted, and again with SIGKILL after a
# seeded checkpoint (6, 12, 18 or 24 of 40) plus a seeded 0-119 ms, then rerun with the same command.
# compare_states.py checks every metric row and every dataset of the final checkpoint (parameters,
# optimizer state, trainer counters) bit for bit. The optimizer settings make each one's state
# change during the run: SOAP refreshes its eigenbases every 4 updates, M-FAC's window of 8
# gradients wraps, DCT-AdamW reselects (and remaps) its columns every 7 steps.
# Also: a completed trial whose result.h5 is lost is rebuilt from its final checkpoint without
# training. Negative control: one pair resumed without its optimizer state
# (EXPT_TEST_DROP_RESUME_STATE=optimizer) must show different final parameters.
# KILL_MATRIX_SEED=<n> replays a run's kill points (printed below).
# Labelled slow (the sanitizer run skips it): 35-60 s in release on 2 busy cores, 75 processes,
# several times that under asan-ubsan (decision 112).
source "$(dirname "$0")/lib.sh"

seed=${KILL_MATRIX_SEED:-$(date +%s)}
RANDOM=$seed
steps=40

declare -A mixers=(
  [attention]="{type: attention, heads: 2}"
  [gla]="{type: gla, heads: 2, chunk_size: 4}"
  [deltanet]="{type: deltanet, heads: 2, chunk_size: 4}"
  [deltaproduct]="{type: deltaproduct, heads: 2, chunk_size: 4}"
  [gated_deltaproduct]="{type: gated_deltaproduct, heads: 2, chunk_size: 4}"
)
declare -A optimizers=(
  [adamw]="{type: adamw, lr: 3.0e-3, weight_decay: 0.1}"
  [muon]="{type: muon, weight_decay: 0.1}"
  [soap]="{type: soap, precondition_frequency: 4}"
  [mfac]="{type: mfac, window: 8, momentum: 0.9}"
  [dct_adamw]="{type: dct_adamw, rank: 4, refresh_every: 7, on_refresh: remap}"
)
mixer_order=(attention gla deltanet deltaproduct gated_deltaproduct)
optimizer_order=(adamw muon soap mfac dct_adamw)

# seq_len 10 with chunks of 4: the chunked kernels see whole chunks and a partial last one.
write_config() {  # $1 mixer, $2 optimizer, $3 file
  cat > "$3" <<YAML
seed: 5
task: {type: word_problem, group: S3, seq_len: 10, eval_lengths: [10]}
model: {d_model: 16, n_layers: 1, mixer: ${mixers[$1]}, mlp: {intermediate_size: 32}}
optimizer: ${optimizers[$2]}
schedule: {type: cosine, warmup: 5}
train: {steps: $steps, batch_size: 8, eval_every: 8, eval_batches: 1, checkpoint_every: 6}
YAML
}

run() { "$EXPT" run "$1" --progress quiet --out "$2"; }

# Starts a slowed run of config $1 on directory $2, waits for checkpoint $3's COMMIT, sleeps $4 ms
# and kills it with SIGKILL.
kill_after() {
  EXPT_TEST_STEP_DELAY_MS=30 "$EXPT" run "$1" --progress quiet --out "$2" > /dev/null 2>&1 &
  local pid=$!
  wait_for_file "$2/checkpoints/step-$3/COMMIT" 120
  sleep "$(printf '0.%03d' "$4")"
  kill -9 "$pid"
  wait "$pid" 2> /dev/null || true
  [[ ! -e $2/result.h5 ]] || die "$2 finished before it was killed; the test proves nothing (seed $seed)"
}

pairs=()
for mixer in "${mixer_order[@]}"; do
  for opt in "${optimizer_order[@]}"; do
    name=$mixer-$opt
    write_config "$mixer" "$opt" "$work/$name.yaml"
    run "$work/$name.yaml" "$work/ref/$name" > "$work/$name.ref.out" 2>&1 \
      || die "$name: uninterrupted run failed: $(cat "$work/$name.ref.out")"
    grep -q "status COMPLETED" "$work/$name.ref.out" || die "$name: did not complete: $(cat "$work/$name.ref.out")"
    checkpoint=$((6 * (1 + RANDOM % 4)))
    delay_ms=$((RANDOM % 120))
    kill_after "$work/$name.yaml" "$work/killed/$name" "$checkpoint" "$delay_ms"
    # A resume that fails or diverges is reported here and judged by the comparison below.
    run "$work/$name.yaml" "$work/killed/$name" > "$work/$name.resume.out" 2>&1 \
      || echo "$name: the resumed run exited $?: $(tail -1 "$work/$name.resume.out")"
    # The second attempt must have resumed from a checkpoint, else the kill proved nothing.
    from_step=$(grep '"event":"start"' "$work/killed/$name/attempts.jsonl" | sed -n '2s/.*"from_step":\([0-9]*\).*/\1/p')
    [[ -n $from_step && $from_step -ge 6 ]] || die "$name: the rerun did not resume from a checkpoint (seed $seed)"
    echo "$name: killed ${delay_ms} ms after checkpoint $checkpoint, resumed from step $from_step"
    pairs+=("$work/ref/$name" "$work/killed/$name")
  done
done
"$EXPT_PYTHON" "$scripts/compare_states.py" "${pairs[@]}" > "$work/compare.txt" \
  || die "a killed-and-resumed trial differs from the uninterrupted one (seed $seed): $(grep DIFFERENT "$work/compare.txt")"
[[ $(grep -c '^IDENTICAL' "$work/compare.txt") -eq 25 ]] || die "expected 25 identical pairs: $(cat "$work/compare.txt")"

# A completed trial whose result.h5 is lost resumes from its final checkpoint: nothing is trained
# again, and the rebuilt result equals the uninterrupted one.
lost=gated_deltaproduct-soap
rm "$work/killed/$lost/result.h5"
run "$work/$lost.yaml" "$work/killed/$lost" > "$work/rebuild.out" 2>&1 || die "rebuild failed: $(cat "$work/rebuild.out")"
grep -q "resuming from step $steps" "$work/killed/$lost/log.txt" || die "the rebuild did not resume from the final checkpoint"
"$EXPT_PYTHON" "$scripts/compare_states.py" "$work/ref/$lost" "$work/killed/$lost" > /dev/null \
  || die "the result rebuilt from the final checkpoint differs"

# Negative control: a resume without the optimizer state must change the final parameters.
control="${mixer_order[RANDOM % 5]}-${optimizer_order[RANDOM % 5]}"
kill_after "$work/$control.yaml" "$work/dropped" 12 0
EXPT_TEST_DROP_RESUME_STATE=optimizer run "$work/$control.yaml" "$work/dropped" > "$work/dropped.out" 2>&1 \
  || die "negative-control run failed: $(cat "$work/dropped.out")"
if "$EXPT_PYTHON" "$scripts/compare_states.py" "$work/ref/$control" "$work/dropped" > "$work/control.txt"; then
  die "negative control: $control resumed without optimizer state compared equal; the comparison cannot fail"
fi
grep -q "final state: .*params" "$work/control.txt" || die "negative control: the final parameters compared equal"
echo "negative control detected ($control): $(tail -1 "$work/control.txt")"
echo "kill_resume_all: 25 mixer x optimizer pairs killed once each (seed $seed) and resumed bit-identically" \
  "(metrics and final checkpoint); a lost result.h5 rebuilt from the final checkpoint"
