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
            let message: String
            switch stop.requestStop(reason) {
            case .stopping where service != nil:
                message = "\(reason.rawValue): stopping \(service ?? "")."
            case .stopping:
                message =
                    "\(reason.rawValue): stopping. The current step is cancelled; cleanup will now return "
                    + "the rack to a safe state. Please wait."
            case .alreadyStopping:
                message = "Already stopping; cleanup will run next. Please wait."
            case .cleanupRunning:
                message =
                    "Cleanup is running and will not be interrupted: it is returning the rack to a safe state. "
                    + "Please wait."
            case .finished:
                return
            }
            output.write((style.live ? "\r\u{1B}[2K" : "") + "\n" + style.paint("  ■ \(message)", "1;35") + "\n")
        }
    }

    deinit { SignalRouter.shared.release(id) }
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
