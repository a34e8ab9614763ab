import Foundation

// Files the tool reads and writes, through POSIX calls: errors in the system's own words, no partial files left
// behind, and none of Foundation's detours (its `contents(atPath:)` leaks its buffer for an empty file, which the
// fuzzer's leak checker found).

/// The bytes of a regular file, at most `limit` of them (an error beyond), read with `read(2)`.
public func readFile(_ path: String, limit: Int) throws(RecordReadError) -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard descriptor >= 0 else { throw RecordReadError(path: path, reason: String(cString: strerror(errno))) }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
        throw RecordReadError(path: path, reason: "not a regular file")
    }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw RecordReadError(path: path, reason: String(cString: strerror(errno)))
        }
        if count == 0 { return bytes }
        guard bytes.count + count <= limit else {
            throw RecordReadError(path: path, reason: "larger than \(limit) bytes")
        }
        bytes += chunk[..<count]
    }
}

/// A file that could not be read: which, and why.
public struct RecordReadError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "cannot read \(path): \(reason)" }
}

extension String {
    /// The text with every character that could steer a terminal or hide text shown as a visible escape: C0 and C1
    /// controls and DEL (`\e`, `\n`, `\t`, `\x07`, `\x9b`), and the Unicode bidirectional overrides and isolates
    /// (`\u{202E}`), which reorder what follows them. Text from a device or a file goes through this before it reaches
    /// the operator's screen, a report or a JUnit file: a BMC cannot clear the screen, set the window title or draw a
    /// forged `VERDICT: PASS` banner. Escaping is idempotent (the result has nothing left to escape).
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: Self.needsEscape) else { return self }
        var result = ""
        result.reserveCapacity(utf8.count + 8)
        for scalar in unicodeScalars {
            guard Self.needsEscape(scalar) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\u{1B}": result += "\\e"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                let hex = String(scalar.value, radix: 16)
                result += scalar.value <= 0xFF ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u{\(hex)}"
            }
        }
        return result
    }

    /// Whether `scalar` is shown escaped: a C0 or C1 control, DEL, or a bidirectional control.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C: true
        default: false
        }
    }
}

/// What went wrong with a file operation, in the system's words: Foundation's file errors wrap the `errno` they came
/// from in a generic "operation could not be completed (NSCocoaErrorDomain error 512)", which says nothing; this
/// digs the underlying error out ("File too large", "Not a directory", "No space left on device").
public func describeFileError(_ error: any Error) -> String {
    let nsError = error as NSError
    if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
    if nsError.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(nsError.code))) }
    if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? any Error {
        let reason = describeFileError(underlying)
        if let path = nsError.userInfo[NSFilePathErrorKey] as? String { return "\(path): \(reason)" }
        return reason
    }
    switch nsError.code {
    case NSFileWriteOutOfSpaceError: return "no space left on the disk"
    case NSFileWriteNoPermissionError, NSFileReadNoPermissionError: return "permission denied"
    case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "no such file or folder"
    case NSFileWriteFileExistsError: return "a file of that name exists already"
    default: return nsError.localizedDescription
    }
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, flushed, then renamed over it), so a reader never
/// sees half a file; on failure the temporary file is removed and the error is the system's own ("File too large",
/// "No space left on device"), not Foundation's generic code 512.
public func writeFileAtomically(_ bytes: some Collection<UInt8>, to path: String) throws(RecordWriteError) {
    let file = try AtomicFileWriter(path: path)
    let data = Array(bytes)
    data.withUnsafeBytes { file.write($0) }
    try file.commit()
}

/// A file written in pieces and then put in place atomically, for one too large to hold in memory whole (an OCP
/// stream of a three-day hold): a temporary file beside `path`, written as it comes, flushed and renamed by
/// `commit`. The writer owns the descriptor; a writer dropped without `commit` removes its temporary file.
public final class AtomicFileWriter {
    public let path: String
    private let temporary: String
    private var descriptor: Int32
    /// The first write error (errno), reported by `commit`.
    private var failure: Int32?

    public init(path: String) throws(RecordWriteError) {
        self.path = path
        temporary = path + ".partial-\(getpid())"
        descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw RecordWriteError(path: path, reason: String(cString: strerror(errno))) }
    }

    /// Appends `buffer` (after a failure, nothing more is written).
    public func write(_ buffer: UnsafeRawBufferPointer) {
        var offset = 0
        while failure == nil, offset < buffer.count, let base = buffer.baseAddress {
            let written = systemWrite(descriptor, base + offset, buffer.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                failure = errno
                return
            }
            offset += written
        }
    }

    /// Flushes the file to disk and renames it over `path`; throws the first error any write met.
    public func commit() throws(RecordWriteError) {
        if failure == nil, fsync(descriptor) != 0 { failure = errno }
        close(descriptor)
        descriptor = -1
        if failure == nil, rename(temporary, path) != 0 { failure = errno }
        if let failure {
            unlink(temporary)
            throw RecordWriteError(path: path, reason: String(cString: strerror(failure)))
        }
    }

    deinit {
        if descriptor >= 0 {
            close(descriptor)
            unlink(temporary)
        }
    }
}

/// `write(2)`, under a name of its own (inside `AtomicFileWriter`, `write` names the writer's method).
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
