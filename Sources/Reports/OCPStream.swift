import AcceptanceCore
import Foundation

/// The run as an OCP Test & Validation output stream (schema 2.0), one JSON object per line: schema version, run
/// start with the DUT (the rack, the parts whose serials were read, firmware versions), each step with its
/// measurements (limits as validators), series, diagnoses and errors, and the run end.
public enum OCPStream {
    static func lines(_ record: RunRecord, series: [String: SeriesData], harness: String) -> String {
        String(decoding: bytes(record, series: series, harness: harness), as: UTF8.self)
    }

    /// The stream as UTF-8 bytes.
    static func bytes(_ record: RunRecord, series: [String: SeriesData], harness: String) -> [UInt8] {
        var writer = Writer()
        write(record, series: series, harness: harness, into: &writer)
        return writer.bytes
    }

    /// Writes the stream to `path` (atomically) a megabyte at a time: a long hold's samples never sit in memory
    /// whole.
    static func write(
        _ record: RunRecord, series: [String: SeriesData], harness: String, to path: String
    ) throws(RecordWriteError) {
        let file = try AtomicFileWriter(path: path)
        var writer = Writer()
        writer.sink = file
        write(record, series: series, harness: harness, into: &writer)
        writer.flush()
        try file.commit()
    }

    static func write(_ record: RunRecord, series: [String: SeriesData], harness: String, into writer: inout Writer) {
        let started = record.started
        writer.emit(started, ["schemaVersion": ["major": 2, "minor": 0]])
        var parameters: [String: JSONValue] = [:]
        for (name, value) in record.parameters { parameters[name] = .string(value) }
        let dut = dutInfo(record)
        writer.emit(
            started,
            [
                "testRunArtifact": [
                    "testRunStart": [
                        "name": .string(record.procedure.id), "version": .string(record.procedure.version),
                        "commandLine": .string("acceptance run \(record.procedure.id)"),
                        "parameters": .object(parameters),
                        "dutInfo": dut.info,
                        "metadata": [
                            "runId": .string(record.runID), "station": .string(record.station),
                            "harness": .string(harness),
                            "procedureSha256": .string(record.procedure.sha256),
                            "simulated": .bool(record.isSimulated),
                            "limitSet": record.limitSet.map {
                                ["name": .string($0.name), "sha256": .string($0.sha256)] as JSONValue
                            } ?? .null,
                            "deviations": .array(
                                (record.deviations ?? []).map { deviation in
                                    [
                                        "parameter": .string(deviation.parameter),
                                        "procedureValue": .string(deviation.procedureValue),
                                        "value": .string(deviation.value), "by": .string(deviation.by),
                                        "reason": .string(deviation.reason),
                                    ]
                                }),
                        ],
                    ]
                ]
            ])
        for (index, step) in record.steps.enumerated() {
            let id = String(index)
            let begin = step.started ?? started
            let end = step.ended ?? begin
            writer.emit(
                begin,
                [
                    "testStepArtifact": [
                        "testStepId": .string(id),
                        "testStepStart": ["name": .string("\(step.id) \(step.name)")],
                    ]
                ])
            if step.verdict == .skipped {
                writer.step(id, end, ["log": ["severity": "INFO", "message": .string(step.message ?? "not run")]])
                writer.step(id, end, ["testStepEnd": ["status": "SKIP"]])
                continue
            }
            let measured =
                step.measurements.map { ($0, nil as String?) }
                + (step.members ?? []).flatMap { member in member.measurements.map { ($0, Optional(member.device)) } }
            for (measurement, device) in measured {
                guard let value = measurementValue(measurement) else { continue }
                var object: [String: JSONValue] = ["name": .string(measurement.name), "value": value]
                if let unit = measurement.unit { object["unit"] = .string(unit) }
                let validators = validators(measurement)
                if !validators.isEmpty { object["validators"] = .array(validators) }
                let hardware = device ?? measurement.name.split(separator: ".").first.map(String.init)
                if let hardware, dut.hardwareIDs.contains(hardware) { object["hardwareInfoId"] = .string(hardware) }
                writer.step(id, end, ["measurement": .object(object)])
            }
            if let data = series[step.id] {
                for (column, point) in data.points.enumerated() {
                    let seriesID = "\(id)-\(column)"
                    var start: [String: JSONValue] = ["measurementSeriesId": .string(seriesID), "name": .string(point)]
                    if column < data.units.count, !data.units[column].isEmpty {
                        start["unit"] = .string(data.units[column])
                    }
                    writer.step(id, begin, ["measurementSeriesStart": .object(start)])
                    var count = 0
                    let origin = Timestamp.date(begin)
                    let values = data.columns[column]
                    if writer.sink == nil, column == 0 {
                        writer.bytes.reserveCapacity(writer.bytes.count + data.times.count * data.points.count * 200)
                    } else {
                        writer.bytes.reserveCapacity(Writer.chunk + 4096)
                    }
                    var stamps = StampWriter()
                    let stepBytes = Writer.quoted(id)
                    let seriesBytes = Writer.quoted(seriesID)
                    for (row, time) in data.times.enumerated() where values[row].isFinite {
                        guard let origin else {
                            // A step start that is not a timestamp (never written by the runner): the general path.
                            writer.step(
                                id, begin,
                                [
                                    "measurementSeriesElement": [
                                        "measurementSeriesId": .string(seriesID), "index": .number(Double(count)),
                                        "value": .number(values[row]), "timestamp": .string(begin),
                                    ]
                                ])
                            count += 1
                            continue
                        }
                        let stamp = stamps.stamp(origin.addingTimeInterval(time).timeIntervalSince1970)
                        writer.seriesElement(
                            step: stepBytes, series: seriesBytes, index: count, value: values[row], at: stamp)
                        count += 1
                    }
                    writer.step(
                        id, end,
                        [
                            "measurementSeriesEnd": [
                                "measurementSeriesId": .string(seriesID),
                                "totalCount": .number(Double(count)),
                            ]
                        ])
                }
            }
            for retry in step.retries ?? [] {
                writer.step(id, end, ["log": ["severity": "WARNING", "message": .string("retry: \(retry)")]])
            }
            for attempt in (step.attempts ?? []).dropLast() {
                let why = (attempt.error ?? attempt.message).map { ": \($0)" } ?? ""
                writer.step(
                    id, end,
                    [
                        "log": [
                            "severity": "WARNING",
                            "message": .string(
                                "attempt \(attempt.attempt) \(attempt.verdict.rawValue)\(why); tried again"),
                        ]
                    ])
            }
            switch step.verdict {
            case .error, .aborted:
                writer.step(
                    id, end,
                    [
                        "error": [
                            "symptom": .string(step.verdict == .error ? "station-error" : "aborted"),
                            "message": .string(step.error ?? step.message ?? step.verdict.rawValue),
                        ]
                    ])
                writer.step(id, end, ["testStepEnd": ["status": "ERROR"]])
            default:
                var diagnosis: [String: JSONValue] = [
                    "verdict": .string("\(step.id)-\(step.verdict.rawValue.lowercased())"),
                    "type": .string(step.verdict == .pass ? "PASS" : "FAIL"),
                ]
                if let message = step.message { diagnosis["message"] = .string(message) }
                writer.step(id, end, ["diagnosis": .object(diagnosis)])
                writer.step(id, end, ["testStepEnd": ["status": "COMPLETE"]])
            }
        }
        // Safety: each interlock that tripped, and the safe-state check, as test steps after the procedure's.
        var safetySteps:
            [(name: String, at: String, passed: Bool, stationError: Bool, message: String, logs: [String])] = []
        for interlock in record.interlocks ?? [] {
            if let waived = interlock.waived {
                writer.emit(
                    started,
                    [
                        "testRunArtifact": [
                            "log": [
                                "severity": "WARNING",
                                "message": .string("interlock \(interlock.name) waived: \(waived)"),
                            ]
                        ]
                    ])
            }
            guard let trip = interlock.trip else { continue }
            safetySteps.append(
                (
                    "interlock \(interlock.name)", trip.at, false, trip.cause == .stale, trip.summary,
                    trip.reaction.map { "reaction \($0.action): \($0.succeeded ? "done" : "FAILED \($0.error ?? "")")" }
                ))
        }
        if let safe = record.safeState {
            safetySteps.append(
                (
                    "safe state", safe.at, safe.verified, false, safe.summary,
                    safe.devices.map {
                        "\($0.device): \($0.outcome.rawValue) [\($0.check)] \($0.readings.joined(separator: ", "))"
                    }
                ))
        }
        for (offset, step) in safetySteps.enumerated() {
            let id = "safety-\(offset)"
            writer.emit(
                step.at,
                ["testStepArtifact": ["testStepId": .string(id), "testStepStart": ["name": .string(step.name)]]])
            for line in step.logs {
                writer.step(
                    id, step.at, ["log": ["severity": step.passed ? "INFO" : "WARNING", "message": .string(line)]])
            }
            if step.stationError {
                writer.step(
                    id, step.at, ["error": ["symptom": "interlock-sensor-lost", "message": .string(step.message)]])
                writer.step(id, step.at, ["testStepEnd": ["status": "ERROR"]])
            } else {
                writer.step(
                    id, step.at,
                    [
                        "diagnosis": [
                            "verdict": .string(step.passed ? "safety-pass" : "safety-fail"),
                            "type": .string(step.passed ? "PASS" : "FAIL"), "message": .string(step.message),
                        ]
                    ])
                writer.step(id, step.at, ["testStepEnd": ["status": "COMPLETE"]])
            }
        }
        let (status, result): (String, String) =
            switch record.verdict {
            case .pass, .skipped: ("COMPLETE", "PASS")
            case .fail: ("COMPLETE", "FAIL")
            case .error, .aborted: ("ERROR", "NOT_APPLICABLE")
            }
        if record.verdict == .error || record.verdict == .aborted, let message = record.message {
            writer.emit(
                record.ended ?? started,
                [
                    "testRunArtifact": [
                        "error": [
                            "symptom": .string(record.verdict.rawValue.lowercased()),
                            "message": .string(message),
                        ]
                    ]
                ])
        }
        writer.emit(
            record.ended ?? started,
            ["testRunArtifact": ["testRunEnd": ["status": .string(status), "result": .string(result)]]])
    }

    struct Writer {
        var sequence = 0
        var bytes: [UInt8] = []
        var text: String { String(decoding: bytes, as: UTF8.self) }
        /// Where full buffers go (a file); without one, everything stays in `bytes`.
        var sink: AtomicFileWriter?
        static let chunk = 1 << 20

        /// Hands what is buffered to the sink.
        mutating func flush() {
            guard let sink, !bytes.isEmpty else { return }
            bytes.withUnsafeBytes { sink.write($0) }
            bytes.removeAll(keepingCapacity: true)
        }

        mutating func emit(_ timestamp: String, _ body: [String: JSONValue]) {
            var object = body
            object["sequenceNumber"] = .number(Double(sequence))
            object["timestamp"] = .string(timestamp)
            bytes += JSONValue.object(object).serialized.utf8
            bytes.append(10)
            sequence += 1
            if bytes.count >= Self.chunk { flush() }
        }

        /// A string as a JSON literal, in bytes.
        static func quoted(_ text: String) -> [UInt8] {
            var out = ""
            JSONLine.appendQuoted(text, to: &out)
            return Array(out.utf8)
        }

        static func appendInteger(_ value: Int, to out: inout [UInt8]) {
            if value < 0 {
                out += String(value).utf8
                return
            }
            var digits:
                (
                    UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                    UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
                ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var count = 0
            var rest = value
            withUnsafeMutableBytes(of: &digits) { buffer in
                repeat {
                    buffer[count] = UInt8(48 + rest % 10)
                    rest /= 10
                    count += 1
                } while rest > 0
                for index in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[index]) }
            }
        }

        mutating func step(_ id: String, _ timestamp: String, _ artifact: [String: JSONValue]) {
            var object = artifact
            object["testStepId"] = .string(id)
            emit(timestamp, ["testStepArtifact": .object(object)])
        }

        @inline(__always) static func append(_ text: StaticString, to out: inout [UInt8]) {
            out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }

        /// One `measurementSeriesElement`, written straight out: the same bytes as `step` makes of it (keys sorted),
        /// without building and sorting four dictionaries for each of a long hold's samples.
        mutating func seriesElement(step id: [UInt8], series: [UInt8], index: Int, value: Double, at stamp: Stamp) {
            Self.append("{\"sequenceNumber\":", to: &bytes)
            Self.appendInteger(sequence, to: &bytes)
            Self.append(",\"testStepArtifact\":{\"measurementSeriesElement\":{\"index\":", to: &bytes)
            Self.appendInteger(index, to: &bytes)
            Self.append(",\"measurementSeriesId\":", to: &bytes)
            bytes += series
            Self.append(",\"timestamp\":\"", to: &bytes)
            stamp.append(to: &bytes)
            Self.append("\",\"value\":", to: &bytes)
            if value == value.rounded(), abs(value) < 1e15 {
                Self.appendInteger(Int(value), to: &bytes)
            } else {
                var text = value.description
                text.withUTF8 { bytes.append(contentsOf: $0) }
            }
            Self.append("},\"testStepId\":", to: &bytes)
            bytes += id
            Self.append("},\"timestamp\":\"", to: &bytes)
            stamp.append(to: &bytes)
            Self.append("\"}\n", to: &bytes)
            sequence += 1
            if bytes.count >= Self.chunk { flush() }
        }

        /// The same with the timestamp given as text (tests compare it with `step`).
        mutating func seriesElement(step id: String, series: String, index: Int, value: Double, at stamp: String) {
            seriesElement(
                step: Self.quoted(id), series: Self.quoted(series), index: index, value: value, at: Stamp(stamp))
        }
    }

    static func measurementValue(_ measurement: MeasurementRecord) -> JSONValue? {
        if let value = measurement.value { return value.isFinite ? .number(value) : nil }
        if let text = measurement.text {
            switch text {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: return .string(text)
            }
        }
        return nil
    }

    static func validators(_ measurement: MeasurementRecord) -> [JSONValue] {
        var list: [JSONValue] = []
        if let low = measurement.low, low.isFinite {
            list.append(["type": "GREATER_THAN_OR_EQUAL", "value": .number(low)])
        }
        if let high = measurement.high, high.isFinite {
            list.append(["type": "LESS_THAN_OR_EQUAL", "value": .number(high)])
        }
        if measurement.value == nil, let limits = measurement.limits, limits.hasPrefix("= ") {
            list.append(["type": "EQUAL", "value": .string(String(limits.dropFirst(2)))])
        }
        return list
    }

    /// The rack as the DUT, with a hardware entry per device whose serial was read and a software entry per
    /// firmware version read.
    static func dutInfo(_ record: RunRecord) -> (info: JSONValue, hardwareIDs: Set<String>) {
        var hardware: [String: [String: JSONValue]] = [:]
        var software: [JSONValue] = []
        let all =
            record.steps.flatMap { $0.measurements }
            + record.steps.flatMap { ($0.members ?? []).flatMap(\.measurements) }
        for measurement in all {
            let parts = measurement.name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, let text = measurement.text else { continue }
            let device = parts[0]
            let point = parts[1]
            if point == "serial" || point == "serial_number" {
                hardware[device, default: ["hardwareInfoId": .string(device), "name": .string(device)]][
                    "serialNumber"] = .string(text)
            } else if point.hasSuffix("_serial") {
                let id = "\(device).\(point.dropLast(7))"
                hardware[id] = [
                    "hardwareInfoId": .string(id), "name": .string(id), "serialNumber": .string(text),
                    "location": .string(device),
                ]
            } else if point.hasSuffix("_version") {
                software.append([
                    "softwareInfoId": .string(measurement.name), "name": .string(measurement.name),
                    "version": .string(text), "softwareType": "FIRMWARE",
                ])
            }
        }
        var rack: [String: JSONValue] = ["hardwareInfoId": "rack", "name": .string(record.rackProfile)]
        if let serial = record.rackSerial { rack["serialNumber"] = .string(serial) }
        var hardwareList: [JSONValue] = [.object(rack)]
        hardwareList += hardware.keys.sorted().compactMap { hardware[$0].map { .object($0) } }
        // The station's instruments that measured the rack: identity from *IDN?, calibration in the location.
        for instrument in record.instruments ?? [] {
            var calibration = "simulated, not calibrated"
            if !instrument.simulated {
                calibration =
                    instrument.calibrationProblem.map { "NOT CALIBRATED: \($0)" }
                    ?? "calibration \(instrument.calibrationCertificate ?? "?") due \(instrument.calibrationDue ?? "?")"
            }
            hardwareList.append([
                "hardwareInfoId": .string("instrument.\(instrument.name)"),
                "name": .string("station instrument \(instrument.name)"),
                "manufacturer": .string(instrument.manufacturer), "partNumber": .string(instrument.model),
                "partType": "station instrument", "serialNumber": .string(instrument.serial),
                "version": .string(instrument.firmware),
                "location": .string("\(instrument.connection); \(calibration)"),
            ])
        }
        var info: [String: JSONValue] = [
            "dutInfoId": .string(record.rackSerial ?? record.runID),
            "name": .string("rack \(record.rackSerial ?? "(no serial)") (\(record.rackProfile))"),
            "hardwareInfos": .array(hardwareList),
        ]
        if !software.isEmpty { info["softwareInfos"] = .array(software) }
        return (.object(info), Set(hardware.keys).union(["rack"]))
    }
}
