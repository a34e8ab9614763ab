import Foundation
import Synchronization

// What several test targets need: the repository, scratch folders, free ports, and running peer programs.

/// The repository root, for tests that read the real procedures and fixtures.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A new empty folder under the system's temporary folder.
public func temporaryDirectory(_ prefix: String = "acceptance-tests") -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A file under the workplace's shared folder (`../shared` beside the repository).
public func shared(_ path: String) -> String {
    let beside = URL(fileURLWithPath: "\(repositoryRoot)/../shared/\(path)").standardizedFileURL.path
    return FileManager.default.fileExists(atPath: beside) ? beside : "/work/shared/\(path)"
}

/// A peer program is missing or misbehaved; the message says how to get it.
public struct PeerMissing: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A program on PATH (pip's console scripts live in pyenv's shims, apt's in /usr/bin).
public func program(_ name: String) throws -> String {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/bin:/usr/local/bin:/bin:/usr/sbin:/sbin"
    for directory in path.split(separator: ":")
    where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
        return "\(directory)/\(name)"
    }
    throw PeerMissing(description: "\(name) is not installed: run `bash .ci/setup`")
}

/// Runs a program to completion (bounded, killed if it overstays), returning its exit status and output.
public func runProgram(
    _ path: String, _ arguments: [String], environment: [String: String]? = nil,
    directory: String? = nil, seconds: Double = 60
) async throws -> (Int32, String) {
    let output = NSTemporaryDirectory() + "peer-\(UUID().uuidString).txt"
    _ = FileManager.default.createFile(atPath: output, contents: nil)
    // posix_spawn, not Foundation's Process (see `ChildProcess`); both streams into one file, appended.
    let process = try ChildProcess(
        path, arguments, environment: environment ?? ProcessInfo.processInfo.environment, directory: directory,
        stdout: output, stderr: output)
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning {
        if Date() > deadline {
            kill(process.processIdentifier, SIGKILL)
            throw PeerMissing(description: "\(path) \(arguments) did not finish within \(Int(seconds)) s")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    return (process.terminationStatus, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
}

/// A TCP port on 127.0.0.1 for a peer or server a test starts and tells the port to, free right now.
///
/// Outside the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`, where port 0 and outgoing
/// connections land), so a server another test binds to port 0, or a client's own end, can never be given it between
/// this choice and the peer's bind; and never the same port twice in one test process. A port chosen with port 0
/// instead was once taken by a busy suite's other server before sushy-emulator started on it.
/// - Parameter consecutive: how many ports from the one returned (a simulator serving its instruments on `port` and
///   `port + 1`), all free and handed out together.
public func freePort(consecutive: Int = 1) -> Int {
    let (low, high) = ephemeralRange()
    // Below the ephemeral range if there is room there, else above it.
    let range = low - 10_000 >= 1_024 ? (low - 10_000)..<(low - 16) : (high + 1)..<min(high + 4_001, 65_520)
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<200 {
        let port = Int.random(in: range, using: &generator)
        let ports = port..<(port + max(1, consecutive))
        let fresh = portsHandedOut.withLock { taken in
            guard taken.isDisjoint(with: ports) else { return false }
            taken.formUnion(ports)
            return true
        }
        if fresh, ports.allSatisfy({ bindLoopback($0) != nil }) { return port }
    }
    // Every try taken (never seen): let the system choose, as before.
    return bindLoopback(0) ?? 0
}

private let portsHandedOut = Mutex<Set<Int>>([])

private func ephemeralRange() -> (Int, Int) {
    let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
    let numbers = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
    return numbers.count == 2 ? (numbers[0], numbers[1]) : (32_768, 60_999)
}

/// Binds a socket to 127.0.0.1:`port` (0: one the system chooses) and closes it: the port it had, or nil if it
/// could not bind (something listens on or holds the port).
private func bindLoopback(_ port: Int) -> Int? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else { return nil }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A small seeded generator (SplitMix64), so random test input is the same every run and a failure can be replayed.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
