import Foundation
import Synchronization

/// One JSON object per line, built by hand into UTF-8 bytes so that appending an event costs a microsecond or two,
/// not a JSONEncoder: keys and values are copied straight into one buffer that the journal writes as it is.
public struct JSONLine: Sendable {
    private var bytes: [UInt8]

    public init() {
        bytes = [UInt8(ascii: "{")]
        bytes.reserveCapacity(256)
    }

    /// A line built in storage that is already allocated (the journal reuses one buffer for every line).
    init(reusing storage: consuming [UInt8]) {
        bytes = storage
        bytes.removeAll(keepingCapacity: true)
        bytes.append(UInt8(ascii: "{"))
    }

    /// The line's storage, for the next line to reuse.
    consuming func takeStorage() -> [UInt8] { bytes }

    private var isEmpty: Bool { bytes.count == 1 }

    private mutating func key(_ key: StaticString) {
        if !isEmpty { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    /// A key that is not known when the code is written (a point's name), quoted and escaped like any text.
    private mutating func key(named key: String) {
        if !isEmpty { bytes.append(UInt8(ascii: ",")) }
        JSONLine.appendQuoted(key, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    /// A text value under a key known only at run time.
    public mutating func add(named key: String, _ value: String?) {
        guard let value else { return }
        self.key(named: key)
        JSONLine.appendQuoted(value, to: &bytes)
    }

    /// A number under a key known only at run time.
    public mutating func add(named key: String, _ value: Double?) {
        guard let value else { return }
        self.key(named: key)
        appendNumber(value)
    }

    private mutating func appendNumber(_ value: Double) {
        if value == value.rounded(), abs(value) < 1e15 {
            JSONLine.appendDecimal(Int(value), to: &bytes)
        } else {
            JSONLine.appendUTF8(value.isFinite ? JSONLine.exact(value) : "null", to: &bytes)
        }
    }

    /// A string's UTF-8, copied in one go where the string is contiguous (native strings are).
    static func appendUTF8(_ text: String, to buffer: inout [UInt8]) {
        var text = text
        text.withUTF8 { buffer.append(contentsOf: $0) }
    }

    public mutating func add(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        self.key(key)
        JSONLine.appendQuoted(value, to: &bytes)
    }

    public mutating func add(_ key: StaticString, _ value: Double?) {
        guard let value else { return }
        self.key(key)
        appendNumber(value)
    }

    public mutating func add(_ key: StaticString, _ value: Int) {
        self.key(key)
        JSONLine.appendDecimal(value, to: &bytes)
    }

    public mutating func add(_ key: StaticString, _ value: Bool) {
        self.key(key)
        JSONLine.appendUTF8(value ? "true" : "false", to: &bytes)
    }

    /// A nested object.
    public mutating func add(_ key: StaticString, object: JSONLine) {
        self.key(key)
        object.appendFinished(to: &bytes)
    }

    public mutating func add(_ key: StaticString, array: [JSONLine]) {
        self.key(key)
        bytes.append(UInt8(ascii: "["))
        for (index, element) in array.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            element.appendFinished(to: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// An array of one-key objects, one per text (`"readings": [{"reading": "cdu.leak_detected = true"}]`).
    public mutating func add(_ key: StaticString, objects texts: [String], each name: StaticString) {
        add(
            key,
            array: texts.map { text in
                var object = JSONLine()
                object.add(name, text)
                return object
            })
    }

    /// The object's text, closed.
    public var finished: String {
        var text = bytes
        text.append(UInt8(ascii: "}"))
        return String(decoding: text, as: UTF8.self)
    }

    /// Appends the closed object's UTF-8 to `buffer` (the journal writes lines this way, with no String between).
    public func appendFinished(to buffer: inout [UInt8]) {
        buffer.append(contentsOf: bytes)
        buffer.append(UInt8(ascii: "}"))
    }

    /// An integer's decimal digits, written straight into the buffer.
    static func appendDecimal(_ value: Int, to buffer: inout [UInt8]) {
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        if magnitude < 10 {
            buffer.append(UInt8(48 + magnitude))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var count = 0
            while magnitude > 0 {
                digits[count] = UInt8(48 + magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { buffer.append(digits[index]) }
        }
    }

    /// A number with every digit it has (shortest form that reads back to the same Double).
    public static func exact(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    public static func appendQuoted(_ value: String, to text: inout String) {
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            text += "\""
            text += value
            text += "\""
            return
        }
        var bytes: [UInt8] = []
        appendQuoted(value, to: &bytes)
        text += String(decoding: bytes, as: UTF8.self)
    }

    static func appendQuoted(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them whole (small strings too: `withUTF8` gives their bytes in place).
        var text = value
        let plain = text.withUTF8 { utf8 -> Bool in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) else { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if plain {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case 0x22: bytes.append(contentsOf: #"\""#.utf8)
            case 0x5C: bytes.append(contentsOf: #"\\"#.utf8)
            case 0x0A: bytes.append(contentsOf: #"\n"#.utf8)
            case 0x0D: bytes.append(contentsOf: #"\r"#.utf8)
            case 0x09: bytes.append(contentsOf: #"\t"#.utf8)
            case ..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: #"\u00"#.utf8)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Why the journal or record could not be written.
public struct RecordWriteError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "cannot write \(path): \(reason)" }

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
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

    /// The lines' sequence numbers, and buffers reused for every write (no allocation per event).
    private struct Writer {
        var sequence = 0
        var output: [UInt8] = []
        var scratch: [UInt8] = []
    }

    private let writer = Mutex(Writer())

    public init(path: String) throws(RecordWriteError) {
        self.path = path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw RecordWriteError(path: path, reason: String(cString: strerror(errno))) }
        self.descriptor = descriptor
        writer.withLock { writer in
            writer.output.reserveCapacity(4096)
            writer.scratch.reserveCapacity(1024)
        }
    }

    deinit { close(descriptor) }

    /// Appends `count` lines with a single `write(2)`: each numbered (`seq`, one more than the line before it in
    /// this journal) and then filled by `describe(index, &line)`. Numbering and writing happen under one lock, so the
    /// file's order is always the numbers' order, whoever writes.
    public func append(count: Int, _ describe: (Int, inout JSONLine) -> Void) throws(RecordWriteError) {
        let failure = writer.withLock { writer -> RecordWriteError? in
            writer.output.removeAll(keepingCapacity: true)
            for index in 0..<count {
                writer.sequence += 1
                var line = JSONLine(reusing: writer.scratch)
                writer.scratch = []
                line.add("seq", writer.sequence)
                describe(index, &line)
                line.appendFinished(to: &writer.output)
                writer.output.append(UInt8(ascii: "\n"))
                writer.scratch = line.takeStorage()
            }
            // Where the file ended before this write: a write that fails part way (a full disk, a file size limit)
            // is cut back to here, so the journal never ends in half a line and the next reader can parse every
            // event up to the last whole one. The lines' numbers are given back for the next attempt.
            let start = lseek(descriptor, 0, SEEK_END)
            let failure = Self.write(descriptor, writer.output, path: path)
            if failure != nil {
                if start >= 0 { _ = ftruncate(descriptor, start) }
                writer.sequence -= count
            }
            return failure
        }
        if let failure { throw failure }
    }

    /// Writes all of `bytes`, retrying after interrupts and short writes.
    private static func write(_ descriptor: Int32, _ bytes: [UInt8], path: String) -> RecordWriteError? {
        bytes.withUnsafeBytes { buffer -> RecordWriteError? in
            guard let base = buffer.baseAddress else { return nil }
            var offset = 0
            while offset < buffer.count {
                let written = systemWrite(descriptor, base + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return RecordWriteError(path: path, reason: String(cString: strerror(errno)))
                }
                offset += written
            }
            return nil
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
            throw RecordWriteError(path: reportsDirectory, reason: describeFileError(error))
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

    /// Reopens the folder of a run that did not finish (its journal appended to, never rewritten), for recovery.
    public init(existing path: String) throws(RecordWriteError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RecordWriteError(path: path, reason: "no such run folder")
        }
        self.path = path
        journal = try Journal(path: (path as NSString).appendingPathComponent("journal.jsonl"))
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes a file atomically (temporary file, then rename), so a reader never sees half a record.
    public func writeAtomically(_ name: String, _ data: Data) throws(RecordWriteError) {
        try writeFileAtomically(data, to: file(name))
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

/// `write(2)`, under a name of its own (inside `Journal`, `write` names the journal's method).
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
