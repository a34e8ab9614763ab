import Foundation
import Synchronization

/// A thread of its own for one connection's blocking calls (libmodbus, libusb), so they never block Swift's
/// cooperative pool.
///
/// Jobs run one at a time, in order. It is also a `TaskExecutor`: a task that prefers it (`withTaskExecutorPreference`)
/// runs on this thread, so a loop of transactions makes its blocking calls inline, with no thread hand-off each.
/// The thread ends when the `ConnectionThread` is released.
public final class ConnectionThread: TaskExecutor, Sendable {
    private final class Queue: Sendable {
        enum Job {
            case work(@Sendable () -> Void)
            case stop
        }

        let jobs = Mutex<[Job]>([])
        /// Wakes the connection's own thread when a job arrives; only that thread ever waits on it.
        let available = NSCondition()
        /// The thread's identity, to tell when a caller already runs on it.
        let identity = Mutex<pthread_t?>(nil)

        func submit(_ job: Job) {
            jobs.withLock { $0.append(job) }
            available.lock()
            available.signal()
            available.unlock()
        }

        /// The next job, waiting for one on the connection's thread (never on Swift's cooperative pool).
        func next() -> Job? {
            available.lock()
            defer { available.unlock() }
            while true {
                if let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return job }
                available.wait()
            }
        }
    }

    private let queue = Queue()

    public init(name: String) {
        let queue = self.queue
        // No wait for the thread to start: until it has, nothing can run on it, so `isCurrent` is rightly false.
        let thread = Thread {
            queue.identity.withLock { $0 = pthread_self() }
            while true {
                switch queue.next() {
                case let .work(body)?: body()
                case .stop?: return
                case nil: continue
                }
            }
        }
        thread.name = name
        thread.start()
    }

    /// Whether the calling code runs on this connection's thread (a task that prefers this executor).
    public var isCurrent: Bool {
        guard let thread = queue.identity.withLock({ $0 }) else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    deinit { queue.submit(.stop) }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.submit(.work { job.runSynchronously(on: self.asUnownedTaskExecutor()) })
    }

    /// Runs `body` on the connection's thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.submit(.work { continuation.resume(returning: body()) })
        }
    }
}

/// The end of a server thread, awaited by async code without holding a thread of the cooperative pool.
public final class ThreadCompletion: Sendable {
    public init() {}

    private let state = Mutex<(isFinished: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Called by the thread as its last act.
    public func finish() {
        let waiters = state.withLock { state in
            state.isFinished = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once `finish()` has been called (at once if it already has).
    public func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let isFinished = state.withLock { state -> Bool in
                if state.isFinished { return true }
                state.waiters.append(continuation)
                return false
            }
            if isFinished { continuation.resume() }
        }
    }
}
