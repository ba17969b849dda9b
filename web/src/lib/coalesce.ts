/**
 * Runs `run` at most once at a time: a trigger while it runs queues one more run (however many
 * triggers came), started when the running one ends. Refetches on bursts of changes thus
 * coalesce into at most one in flight and one queued.
 *
 * With `minGapMs`, runs also start at least that far apart: a trigger sooner after the last
 * start waits for the rest of the gap (and any further triggers meanwhile join it).
 */
export class Coalescer {
  private running = false;
  private queued = false;
  private lastStart = -Infinity;

  constructor(
    private readonly run: () => Promise<unknown>,
    private readonly minGapMs = 0,
    private readonly wait: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  trigger(): void {
    if (this.running) {
      this.queued = true;
      return;
    }
    void this.loop();
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      do {
        const left = this.lastStart + this.minGapMs - Date.now();
        if (left > 0) await this.wait(left);
        this.queued = false;
        this.lastStart = Date.now();
        try {
          await this.run();
        } catch {
          // the run reports its own errors; a failed one does not stop the queued one
        }
      } while (this.queued);
    } finally {
      this.running = false;
    }
  }
}
