// "In the last minute" from counters that only grow: the gateway reports its 429s since
// it started, and the page keeps what it read over the last minute and shows the
// difference. A count that went down (the gateway restarted, or a balancer sent this
// refresh to another replica) starts the window again.
const WINDOW_MS = 60_000;

const samples = []; // {at, counts: {name: total}}, oldest first

export function recentCounts(at, counts) {
  const now = at * 1000;
  const oldest = samples[0];
  const wentDown =
    oldest && Object.entries(oldest.counts).some(([name, n]) => (counts[name] || 0) < n);
  if (wentDown) samples.length = 0;
  samples.push({ at: now, counts });
  while (samples.length > 1 && samples[1].at <= now - WINDOW_MS) samples.shift();
  const base = samples[0].counts;
  const recent = {};
  for (const [name, n] of Object.entries(counts)) recent[name] = n - (base[name] || 0);
  return { recent, sinceMs: now - samples[0].at };
}
