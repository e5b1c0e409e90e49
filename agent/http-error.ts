/** An error of the agent's HTTP API: its status and stable code (answered as one line of JSON). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
