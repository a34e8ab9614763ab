import Foundation
import Synchronization

/// One JSON object per line, built by hand so that appending an event costs microseconds, not a JSONEncoder.
public struct JSONLine: Sendable {
    private var text = "{"
    private var isEmpty = true

    public init() {}

    private mutating func key(_ key: String) {
        if !isEmpty { text += "," }
        isEmpty = false
        text += "\""
        text += key
        text += "\":"
    }

    public mutating func add(_ key: String, _ value: String?) {
        guard let value else { return }
        self.key(key)
        JSONLine.appendQuoted(value, to: &text)
    }

    public mutating func add(_ key: String, _ value: Double?) {
        guard let value else { return }
        self.key(key)
        text += value.isFinite ? JSONLine.exact(value) : "null"
    }

    public mutating func add(_ key: String, _ value: Int) {
        self.key(key)
        text += String(value)
    }

    public mutating func add(_ key: String, _ value: Bool) {
        self.key(key)
        text += value ? "true" : "false"
    }

    /// A nested object.
    public mutating func add(_ key: String, object: JSONLine) {
        self.key(key)
        text += object.finished
    }

    public mutating func add(_ key: String, array: [JSONLine]) {
        self.key(key)
        text += "[" + array.map(\.finished).joined(separator: ",") + "]"
    }

    public var finished: String { text + "}" }

    /// A number with every digit it has (shortest form that reads back to the same Double).
    public static func exact(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func appendQuoted(_ value: String, to text: inout String) {
        text += "\""
        // Most strings need no escaping: copy them whole.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            text += value
            text += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case let c where c.value < 0x20: text += String(format: "\\u%04x", c.value)
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}

/// Why the journal or record could not be written.
public struct RecordWriteError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "cannot write \(path): \(reason)" }
}

/// The append-only event log of a run, `journal.jsonl`.
///
/// Each event is one `write(2)` of one line straight to the file, with no buffering in the process, so a killed
/// process (`kill -9`, a crash) loses nothing already written: the kernel has it. Against a power cut the file is
/// also `fsync`ed, at most every `syncInterval` and always at the end of the run, so a power cut loses at most that
/// much of the journal without making every step pay for a disk flush.
public final class Journal: Sendable {
    public let path: String
    private let descriptor: Int32
    public let syncInterval: Duration = .milliseconds(250)
    private let lastSync = Mutex(ContinuousClock.now)

    public init(path: String) throws(RecordWriteError) {
        self.path = path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw RecordWriteError(path: path, reason: String(cString: strerror(errno))) }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Appends lines with a single `write(2)`.
    public func append(_ lines: [JSONLine]) throws(RecordWriteError) {
        var text = ""
        for line in lines {
            text += line.finished
            text += "\n"
        }
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                write(descriptor, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw RecordWriteError(path: path, reason: String(cString: strerror(errno)))
            }
            offset += written
        }
    }

    /// Flushes to stable storage (survives a power cut, not just a killed process).
    public func sync() throws(RecordWriteError) {
        lastSync.withLock { $0 = ContinuousClock.now }
        if fsync(descriptor) != 0 { throw RecordWriteError(path: path, reason: String(cString: strerror(errno))) }
    }

    /// Flushes to stable storage if the last flush was more than `syncInterval` ago.
    public func syncIfDue() throws(RecordWriteError) {
        let now = ContinuousClock.now
        let due = lastSync.withLock { last -> Bool in
            guard now - last >= syncInterval else { return false }
            last = now
            return true
        }
        if due, fsync(descriptor) != 0 { throw RecordWriteError(path: path, reason: String(cString: strerror(errno))) }
    }
}

/// A run's folder: `journal.jsonl` as the run goes, then `record.json` and series CSVs.
public struct RunFolder: Sendable {
    public let path: String
    public let journal: Journal

    /// Creates `<reports>/<run id>/`, which must not exist yet (two runs never share a folder), and opens its
    /// journal.
    public init(reportsDirectory: String, runID: String) throws(RecordWriteError) {
        path = (reportsDirectory as NSString).appendingPathComponent(runID)
        do {
            try FileManager.default.createDirectory(atPath: reportsDirectory, withIntermediateDirectories: true)
        } catch {
            throw RecordWriteError(path: reportsDirectory, reason: error.localizedDescription)
        }
        guard mkdir(path, 0o755) == 0 else {
            throw RecordWriteError(
                path: path,
                reason: errno == EEXIST
                    ? "a run folder of that name exists already"
                    : String(cString: strerror(errno)))
        }
        journal = try Journal(path: (path as NSString).appendingPathComponent("journal.jsonl"))
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes a file atomically (temporary file, then rename), so a reader never sees half a record.
    public func writeAtomically(_ name: String, _ data: Data) throws(RecordWriteError) {
        let target = file(name)
        do {
            try data.write(to: URL(fileURLWithPath: target), options: .atomic)
        } catch {
            throw RecordWriteError(path: target, reason: error.localizedDescription)
        }
    }

    public func writeRecord(_ record: RunRecord) throws(RecordWriteError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // A reading can be non-finite (a device fault); the record must still be written.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity",
            negativeInfinity: "-Infinity", nan: "NaN")
        do {
            try writeAtomically("record.json", try encoder.encode(record))
        } catch let error as RecordWriteError {
            throw error
        } catch {
            throw RecordWriteError(path: file("record.json"), reason: "\(error)")
        }
    }
}
