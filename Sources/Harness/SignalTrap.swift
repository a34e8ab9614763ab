import AcceptanceCore
import Dispatch
import Foundation
import Synchronization

/// Routes SIGINT, SIGTERM and SIGHUP to a `StopController` instead of killing the process, so cleanup always runs.
///
/// While cleanup runs, further signals only print that cleanup is in progress.
public final class SignalTrap: Sendable {
    /// Installed first thing in `main`, before arguments are parsed or anything is created: until a command installs
    /// a `SignalTrap`, SIGINT, SIGTERM and SIGHUP end the process at once with `exitCode` and a line saying so (the
    /// default action killed it without a word, and a signal while a run folder was being made left an empty
    /// journal; `run` takes the signals over before it creates anything). One set of signal sources serves the whole process (libdispatch hands a
    /// signal to one source only); a trap takes the signals over under the same lock the early exit takes, so a
    /// signal is either handled here before the command has created anything, or by the command's trap.
    public static func installEarly(exitCode: Int32) {
        SignalRouter.shared.install(earlyExit: exitCode)
    }

    private let id: Int

    /// `service` names what stops for a long-running service (the simulator), instead of the run's cleanup message.
    public init(
        stop: StopController, output: ConsoleOutput = .standardError, style: ConsoleStyle,
        service: String? = nil
    ) {
        id = SignalRouter.shared.claim { reason in
            let disposition = stop.requestStop(reason)
            let message =
                disposition == .stopping && service != nil
                ? "\(reason.rawValue): stopping \(service ?? "")."
                : Self.message(disposition, reason: reason, stopping: "")
            guard let message else { return }
            output.write((style.live ? "\r\u{1B}[2K" : "") + "\n" + style.paint("  ■ \(message)", "1;35") + "\n")
        }
    }

    /// What a signal's disposition tells the operator (nil when the run has finished); `stopping` names what stops
    /// (" bay 3"), empty for the run itself.
    static func message(_ disposition: StopController.Disposition, reason: StopReason, stopping: String) -> String? {
        switch disposition {
        case .stopping:
            "\(reason.rawValue): stopping\(stopping). The current step is cancelled; cleanup will now return "
                + "the rack to a safe state. Please wait."
        case .alreadyStopping: "Already stopping; cleanup will run next. Please wait."
        case .cleanupRunning:
            "Cleanup is running and will not be interrupted: it is returning the rack to a safe state. Please wait."
        case .finished: nil
        }
    }

    deinit { SignalRouter.shared.release(id) }
}

/// A line's signals: SIGTERM and SIGHUP stop every bay; Ctrl-C asks which bays to stop (`ask`, given the bays
/// still running; nil means all, an empty list none) when there is someone to ask and more than one bay runs. A
/// second Ctrl-C while the question is open stops every bay. Each bay stopped runs its cleanup.
public final class LineSignalTrap: Sendable {
    public typealias BayStop = (number: Int, stop: StopController)

    private let id: Int
    private let bays: [BayStop]
    private let output: ConsoleOutput
    private let style: ConsoleStyle
    private let ask: (@Sendable (_ running: [Int]) async -> [Int]?)?
    /// Whether the question is open now.
    private let asking = Mutex(false)

    public init(
        bays: [BayStop], output: ConsoleOutput = .standardError, style: ConsoleStyle,
        ask: (@Sendable (_ running: [Int]) async -> [Int]?)?
    ) {
        self.bays = bays
        self.output = output
        self.style = style
        self.ask = ask
        let router = SignalRouter.shared
        let box = WeakTrap()
        id = router.claim { reason in box.trap?.handle(reason) }
        box.set(self)
    }

    deinit { SignalRouter.shared.release(id) }

    func handle(_ reason: StopReason) {
        let running = bays.filter { $0.stop.reason == nil }.map(\.number)
        let askNow =
            reason == .interrupt && ask != nil && running.count > 1
            && asking.withLock { open -> Bool in
                if open { return false }
                open = true
                return true
            }
        guard askNow, let ask else {
            stop(nil, reason)
            return
        }
        Task {
            let chosen = await ask(running)
            asking.withLock { $0 = false }
            if chosen?.isEmpty == true {
                output.write(style.paint("  ■ Nothing stopped; every bay goes on.", "1;35") + "\n")
            } else {
                stop(chosen, reason)
            }
        }
    }

    /// Stops `numbers` (nil: every bay) and says so.
    func stop(_ numbers: [Int]?, _ reason: StopReason) {
        var dispositions: [StopController.Disposition] = []
        for bay in bays where numbers?.contains(bay.number) ?? true {
            dispositions.append(bay.stop.requestStop(reason))
        }
        let which =
            numbers.map { " bay\($0.count == 1 ? "" : "s") \($0.map(String.init).joined(separator: ", "))" }
            ?? " every bay"
        // The most telling disposition among the bays: one stopping now, else already stopping, else cleaning up.
        let disposition = [StopController.Disposition.stopping, .alreadyStopping, .cleanupRunning].first {
            dispositions.contains($0)
        }
        guard let disposition, let message = SignalTrap.message(disposition, reason: reason, stopping: which) else {
            return
        }
        output.write((style.live ? "\r\u{1B}[2K" : "") + "\n" + style.paint("  ■ \(message)", "1;35") + "\n")
    }
}

/// The trap a signal handler reaches without keeping it alive (it is released with its owner).
private final class WeakTrap: Sendable {
    private let reference = Mutex<LineSignalTrapReference?>(nil)
    var trap: LineSignalTrap? { reference.withLock { $0?.trap } }
    func set(_ trap: LineSignalTrap) { reference.withLock { $0 = LineSignalTrapReference(trap: trap) } }
}

private struct LineSignalTrapReference: Sendable {
    weak var trap: LineSignalTrap?
}

/// The process's one set of signal sources, and who handles them now.
final class SignalRouter: Sendable {
    static let shared = SignalRouter()

    /// Dispatch sources are created once and never mutated afterwards; Dispatch serialises their handlers.
    private struct Sources: @unchecked Sendable {
        let sources: [DispatchSourceSignal]
    }

    private struct State {
        var sources: Sources?
        var earlyExit: Int32?
        var handler: (id: Int, handle: @Sendable (StopReason) -> Void)?
        var nextID = 0
    }

    private let state = Mutex(State())

    /// Creates the sources (once); until a trap claims them, a signal exits with `earlyExit` if given.
    func install(earlyExit: Int32?) {
        state.withLock { state in
            if let earlyExit { state.earlyExit = earlyExit }
            guard state.sources == nil else { return }
            // A console that went away (a dead `| tee`, a dropped SSH session) must not kill the run before cleanup:
            // writes to it then fail quietly instead of raising SIGPIPE. Likewise a file size limit (`ulimit -f`,
            // systemd's LimitFSIZE) must fail the write (EFBIG), which the journal survives, not kill the process.
            signal(SIGPIPE, SIG_IGN)
            signal(SIGXFSZ, SIG_IGN)
            var sources: [DispatchSourceSignal] = []
            for (number, reason) in [
                (SIGINT, StopReason.interrupt), (SIGTERM, StopReason.terminate), (SIGHUP, StopReason.hangup),
            ] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { [weak self] in self?.deliver(reason, number: number) }
                source.resume()
                sources.append(source)
            }
            state.sources = Sources(sources: sources)
        }
    }

    private func deliver(_ reason: StopReason, number: Int32) {
        let handler = state.withLock { state -> (@Sendable (StopReason) -> Void)? in
            if let handler = state.handler { return handler.handle }
            if let code = state.earlyExit {
                // Under the lock: no trap can claim the signals (and go on to create things) while this exits.
                ConsoleOutput.standardError.write("\nstopped by \(reason.rawValue)\n")
                exit(code)
            }
            return nil
        }
        handler?(reason)
    }

    /// Routes the signals to `handle` until `release`; returns the claim's id.
    func claim(_ handle: @escaping @Sendable (StopReason) -> Void) -> Int {
        install(earlyExit: nil)
        return state.withLock { state in
            state.nextID += 1
            state.handler = (state.nextID, handle)
            return state.nextID
        }
    }

    func release(_ id: Int) {
        state.withLock { state in
            if state.handler?.id == id { state.handler = nil }
        }
    }
}
