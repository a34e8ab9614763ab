import Foundation

/// A child process started with `posix_spawn`, for the tests that start many: Foundation's `Process.run()` in this
/// toolchain (Swift 6.3.1) lists `/proc/self/fd` by copying each entry's whole 256-byte `d_name`, which reads past
/// glibc's readdir buffer when the process has some 1,350 descriptors open, and crashes the test process
/// (swiftlang/swift-corelibs-foundation#5472, fixed upstream after this release; CI hit it once). This lists the
/// descriptors without that copy, closes each in the child, and otherwise does what `Process` did for the tests:
/// its own process group, the spawning thread's signal mask, standard input from /dev/null, output to files.
public final class ChildProcess: @unchecked Sendable {
    // `status` is written under `lock` only.
    public let processIdentifier: pid_t
    private let lock = NSLock()
    private var status: Int32?

    /// Starts `path` with `arguments` in `directory` (through `env -C`), its standard output and error appended
    /// to the files at `stdout` and `stderr` (created if missing).
    public init(
        _ path: String, _ arguments: [String], environment: [String: String], directory: String? = nil,
        stdout: String, stderr: String
    ) throws {
        var argv = [path] + arguments
        var executable = path
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let directory {
            // glibc's posix_spawn_file_actions_addchdir_np (2.29 and later), which Swift's Glibc module does not
            // declare; without it, through `env -C` (a signal in its first moment would then reach env, not the
            // program).
            if let addChdir = Self.addChdir {
                _ = addChdir(&actions, directory)
            } else {
                executable = "/usr/bin/env"
                argv = ["env", "-C", directory, path] + arguments
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let highest = Self.highestOpenDescriptor(), highest >= 3 {
            for descriptor in 3...highest { posix_spawn_file_actions_addclose(&actions, descriptor) }
        }
        // Its own process group; the signal mask and ignored signals inherited from the spawning thread, as
        // `Process` does (a pool thread blocks SIGINT, so a stop sent in the child's first moments waits for its
        // handlers instead of killing it before they are installed).
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        var pid = pid_t()
        let result = Self.withCStrings(argv) { argv in
            Self.withCStrings(envp) { envp in posix_spawn(&pid, executable, &actions, &attributes, argv, envp) }
        }
        guard result == 0 else {
            throw PeerMissing(description: "cannot start \(path): \(String(cString: strerror(result)))")
        }
        processIdentifier = pid
    }

    /// Whether it still runs (reaps it once it has ended).
    public var isRunning: Bool { ended() == nil }

    /// The exit code, or the signal that ended it (as `Process` reports them); -1 while it runs.
    public var terminationStatus: Int32 {
        guard let status = ended() else { return -1 }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
    }

    public var terminationReason: Process.TerminationReason {
        guard let status = ended() else { return .exit }
        return status & 0x7f == 0 ? .exit : .uncaughtSignal
    }

    public func terminate() { kill(processIdentifier, SIGTERM) }

    /// Blocks this thread until it ends.
    public func waitUntilExit() {
        while isRunning { usleep(10_000) }
    }

    private func ended() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        let reaped = waitpid(processIdentifier, &raw, WNOHANG)
        // Stopped children (status & 0xff == 0x7f) still run.
        guard reaped == processIdentifier, raw & 0xff != 0x7f else {
            if reaped < 0, errno == ECHILD { status = 0 }
            return status
        }
        status = raw
        return raw
    }

    typealias AddChdir =
        @convention(c) (
            UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?
        ) -> Int32

    static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map {
        unsafeBitCast($0, to: AddChdir.self)
    }

    /// The highest descriptor number in /proc/self/fd, each name read through a pointer (never a copy of the
    /// fixed-size `d_name` field, which is what crashes `Process.run()`).
    static func highestOpenDescriptor() -> Int32? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        guard let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name) else { return nil }
        var highest: Int32 = -1
        while let entry = readdir(directory) {
            let name = String(cString: (UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
            if let number = Int32(name) { highest = max(highest, number) }
        }
        return highest
    }

    static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers = strings.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeMutableBufferPointer { buffer in
            // posix_spawn takes `char *const []`; the buffer outlives the call.
            body(UnsafePointer(buffer.baseAddress.unsafelyUnwrapped))
        }
    }
}
