import Synchronization

/// Why a run is being stopped early.
public enum StopReason: String, Sendable, Hashable {
    case interrupt = "SIGINT"
    case terminate = "SIGTERM"
    /// The terminal went away (an SSH session dropped).
    case hangup = "SIGHUP"
    /// The operator declined a prompt.
    case operatorAbort = "operator"
    /// An interlock tripped: the rack is unsafe (or its sensor is lost), and the run ends FAIL (ERROR) naming it.
    case interlock
}

/// Turns Ctrl-C and SIGTERM into an orderly stop: the running step is cancelled, then cleanup runs.
///
/// During cleanup further requests are refused (and reported as such), so a second Ctrl-C cannot leave the rack
/// pressurised with its valve shut.
public final class StopController: Sendable {
    public enum Disposition: Sendable, Equatable {
        /// The run will stop and clean up.
        case stopping
        /// Already stopping; nothing more to do.
        case alreadyStopping
        /// Cleanup is running and will not be interrupted.
        case cleanupRunning
        /// The run has finished.
        case finished
    }

    enum Phase { case running, cleanup, finished }

    struct State {
        var phase = Phase.running
        var reason: StopReason?
        var waiters: [Int: CheckedContinuation<StopReason?, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var reason: StopReason? { state.withLock { $0.reason } }

    @discardableResult
    public func requestStop(_ reason: StopReason) -> Disposition {
        let (disposition, waiters) = state.withLock {
            state -> (Disposition, [CheckedContinuation<StopReason?, Never>]) in
            switch state.phase {
            case .finished: return (.finished, [])
            case .cleanup: return (.cleanupRunning, [])
            case .running:
                if state.reason != nil { return (.alreadyStopping, []) }
                state.reason = reason
                let waiters = Array(state.waiters.values)
                state.waiters = [:]
                return (.stopping, waiters)
            }
        }
        for waiter in waiters { waiter.resume(returning: reason) }
        return disposition
    }

    func enterCleanup() { state.withLock { $0.phase = .cleanup } }

    func finish() { state.withLock { $0.phase = .finished } }

    /// Returns the reason once a stop is requested, or nil if the waiting task is cancelled first.
    public func waitForStop() async -> StopReason? {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate: StopReason?? = state.withLock { state in
                    if let reason = state.reason { return .some(reason) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}
