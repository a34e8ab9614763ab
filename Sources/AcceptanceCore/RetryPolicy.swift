/// How often, and how patiently, to try a failed request again: the same policy for every transport.
public struct RetryPolicy: Sendable, Hashable {
    /// Retries after a timeout, a lost connection, a garbled answer or a "busy" device.
    public var retries: Int
    /// Wait before the first retry; doubles for each further one.
    public var backoff: Duration

    public init(retries: Int = 2, backoff: Duration = .milliseconds(500)) {
        self.retries = retries
        self.backoff = backoff
    }

    /// The wait before retry `attempt` (1-based): the backoff, doubled for each retry before it.
    public func delay(before attempt: Int) -> Duration {
        backoff * (1 << min(max(attempt - 1, 0), 10))
    }
}
