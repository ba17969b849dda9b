/**
 * Runs `run` at most once at a time: a trigger while it runs queues one more run (however many
 * triggers came), started when the running one ends. Refetches on bursts of changes thus
 * coalesce into at most one in flight and one queued.
 */
export class Coalescer {
  private running = false;
  private queued = false;

  constructor(private readonly run: () => Promise<unknown>) {}

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
        this.queued = false;
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
