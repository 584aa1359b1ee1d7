import { formatDuration } from '../config/duration.js';
import { BanshoError, type Service } from '../errors.js';

/**
 * A hard time bound for one check, enforced by bansho rather than by a driver option:
 * drivers bound the TCP connect at best, while a peer that accepts and then says nothing
 * must fail just as surely. When the deadline passes (or the caller's signal aborts),
 * `onExpire` runs to tear the client down, and every pending `race` rejects at once.
 */
export interface Deadline {
  /** Resolves or rejects like `work`, or rejects with `timeout` / `interrupted` first. */
  race<T>(work: Promise<T>): Promise<T>;
  /** What the check is doing now; named in the timeout message ("while connecting"). */
  phase: string;
  /** Stops the timer; call it in `finally`. */
  clear(): void;
}

export interface DeadlineOptions {
  timeoutMs: number;
  service: Service;
  /** Ends the check early, e.g. on SIGINT. */
  signal?: AbortSignal | undefined;
  /** Tears down whatever the check holds open, so that nothing outlives the deadline. */
  onExpire: () => void;
}

const SERVICE_NAMES: Record<Service, string> = { redis: 'Redis', postgres: 'PostgreSQL' };

export function startDeadline(options: DeadlineOptions): Deadline {
  const controller = new AbortController();
  const deadline: Deadline = { race, phase: 'connecting', clear };

  const timer = setTimeout(() => {
    controller.abort(
      new BanshoError(
        'timeout',
        `${SERVICE_NAMES[options.service]} did not answer within ${formatDuration(options.timeoutMs)} (while ${deadline.phase})`,
        { service: options.service },
      ),
    );
  }, options.timeoutMs);
  const onParentAbort = () => controller.abort(interruptedError(options.signal?.reason));
  options.signal?.addEventListener('abort', onParentAbort, { once: true });
  if (options.signal?.aborted) onParentAbort();
  controller.signal.addEventListener('abort', options.onExpire, { once: true });

  function race<T>(work: Promise<T>): Promise<T> {
    // The work's own rejection after an abort is expected and must not surface as unhandled.
    work.catch(() => {});
    if (controller.signal.aborted) return Promise.reject(controller.signal.reason);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(controller.signal.reason);
      controller.signal.addEventListener('abort', onAbort, { once: true });
      work.then(
        (value) => {
          controller.signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          controller.signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  function clear(): void {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onParentAbort);
  }

  return deadline;
}

function interruptedError(reason?: unknown): BanshoError {
  const signalName = typeof reason === 'string' ? reason : 'a signal';
  return new BanshoError('interrupted', `interrupted by ${signalName}`);
}
