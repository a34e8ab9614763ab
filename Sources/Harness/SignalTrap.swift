import AcceptanceCore
import Dispatch
import Foundation

/// Routes SIGINT, SIGTERM and SIGHUP to a `StopController` instead of killing the process, so cleanup always runs.
///
/// While cleanup runs, further signals only print that cleanup is in progress.
public final class SignalTrap: Sendable {
    /// Dispatch sources are created in `init` and only cancelled in `deinit`; they are never mutated in between,
    /// and Dispatch itself serialises their handlers.
    private struct Sources: @unchecked Sendable {
        let sources: [DispatchSourceSignal]
    }

    private let sources: Sources

    /// `service` names what stops for a long-running service (the simulator), instead of the run's cleanup message.
    public init(
        stop: StopController, output: ConsoleOutput = .standardError, style: ConsoleStyle,
        service: String? = nil
    ) {
        // A console that went away (a dead `| tee`, a dropped SSH session) must not kill the run before cleanup:
        // writes to it then fail quietly instead of raising SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var sources: [DispatchSourceSignal] = []
        for (number, reason) in [
            (SIGINT, StopReason.interrupt), (SIGTERM, StopReason.terminate),
            (SIGHUP, StopReason.hangup),
        ] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
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
            source.resume()
            sources.append(source)
        }
        self.sources = Sources(sources: sources)
    }

    deinit {
        for source in sources.sources { source.cancel() }
    }
}
