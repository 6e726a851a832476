/** Every error ferry reports carries a stable `code` and a one-line message saying what to do. */
export class FerryError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "FerryError";
    this.code = code;
  }
}

export function isFerryError(e: unknown): e is FerryError {
  return e instanceof FerryError;
}
