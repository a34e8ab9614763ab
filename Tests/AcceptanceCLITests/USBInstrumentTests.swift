import Foundation
import TestSupport
import Testing

/// `acceptance simulate` serving its bench instruments as SCPI sockets, and each of them emulated as a USB device
/// by umockdev (Peers/usbtmc_device.py, run by Debian's python3 for its gi bindings) forwarding USBTMC messages to
/// those sockets: the same instrument model the in-memory runs use. Processes started with `environment` see the
/// emulated devices through the real libusb; nothing else on the machine does.
final class EmulatedBench: @unchecked Sendable {
    let simulator: Running
    let device = Process()
    let control = Pipe()
    let deviceOut: String
    let deviceErr: String
    let station: String
    /// name → (usb, serial) of each served instrument.
    let instruments: [String: (usb: String, serial: String)]
    let environment: [String: String]
    private var commands = 0

    init(redfish: Bool = false, scale: String = "20") async throws {
        let folder = temporaryDirectory()
        station = folder + "/station.yaml"
        simulator = try Running(
            [
                "simulate", "--port", "0", "--redfish-port", redfish ? "0" : "-1", "--scpi-port", "0",
                "--time-scale", scale, "--bench-out", folder + "/bench.json", "--station-out", station, "--bench-usb",
            ], directory: folder)
        _ = try await waitFor(simulator.stdoutPath) { $0.contains("Ctrl-C to stop") }
        let bench = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/bench.json")))
                as? [[String: String]])
        var found: [String: (String, String)] = [:]
        var arguments = ["\(repositoryRoot)/Tests/AcceptanceCLITests/Peers/usbtmc_device.py"]
        for entry in bench {
            guard let name = entry["name"], let usb = entry["usb"], let serial = entry["serial"],
                let scpi = entry["scpi"]
            else { continue }
            found[name] = (usb, serial)
            arguments += ["--device", "\(usb):\(serial)=\(scpi)"]
        }
        instruments = found
        deviceOut = folder + "/device.out"
        deviceErr = folder + "/device.err"
        _ = FileManager.default.createFile(atPath: deviceOut, contents: nil)
        _ = FileManager.default.createFile(atPath: deviceErr, contents: nil)
        // Debian's python3: the one with the gi bindings for umockdev.
        device.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        device.arguments = arguments
        device.standardInput = control
        device.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: deviceOut))
        device.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: deviceErr))
        try device.run()
        let ready = try await waitFor(deviceOut, seconds: 30) { $0.contains("umockdev_dir") }
        let line = try #require(ready.split(separator: "\n").first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let root = try #require(object["umockdev_dir"] as? String)
        environment = ["LD_PRELOAD": "libumockdev-preload.so.0", "UMOCKDEV_DIR": root]
    }

    /// Arms a one-shot fault on an instrument's emulated device (firing after `after` normal bulk-IN transfers).
    func fault(_ serial: String, _ name: String, after: Int? = nil) async throws {
        try await command("fault \(serial) \(name)" + (after.map { " after \($0)" } ?? ""))
    }

    /// The emulated device's counters (messages, aborts, clears, ...).
    func stats(_ serial: String) async throws -> [String: Any] {
        let reply = try await command("stats \(serial)")
        return try #require(
            try JSONSerialization.jsonObject(with: Data(reply.dropFirst(3).utf8)) as? [String: Any])
    }

    @discardableResult
    func command(_ text: String) async throws -> String {
        commands += 1
        let expected = commands
        control.fileHandleForWriting.write(Data((text + "\n").utf8))
        let output = try await waitFor(deviceOut) { output in
            output.split(separator: "\n").filter { $0.hasPrefix("ok") || $0.hasPrefix("error") }.count >= expected
        }
        let reply = String(
            output.split(separator: "\n").filter { $0.hasPrefix("ok") || $0.hasPrefix("error") }[expected - 1])
        guard reply.hasPrefix("ok") else { throw CLIError(message: "the emulated device refused '\(text)': \(reply)") }
        return reply
    }

    func stop() {
        try? control.fileHandleForWriting.close()
        device.terminate()
        simulator.signal(SIGTERM)
    }
}

@Suite("USB instruments through the real libusb, emulated with umockdev", .serialized)
struct USBInstrumentTests {
    @Test("acceptance instruments lists the emulated DMM, and read returns the simulated busbar through libusb")
    func listAndRead() async throws {
        let bench = try await EmulatedBench()
        defer { bench.stop() }
        let listed = try await run(["instruments", "--station", bench.station], environment: bench.environment)
        #expect(listed.status == 0, "\(listed.stdout)\(listed.stderr)")
        #expect(listed.stdout.contains("2a8d:0101  serial SIMDMM0001"))
        #expect(listed.stdout.contains("profile keysight-34465a"))
        #expect(listed.stdout.contains("USBTMC 01.00, USB488 01.00 (SCPI, REN"))
        #expect(listed.stdout.contains("*IDN? Simulated Instruments 34465A, serial SIMDMM0001, firmware 1.0.0"))
        #expect(listed.stdout.contains("dmm: USB 2a8d:0101 serial SIMDMM0001 attached, calibration"))
        // Without the emulation, nothing is attached: the listing is honest about it.
        let bare = try await run(["instruments"])
        #expect(bare.stdout.contains("No USBTMC instruments attached."))

        let read = try await run(
            ["read", "dmm.dc_voltage", "--station", bench.station], environment: bench.environment)
        #expect(read.status == 0, "\(read.stderr)")
        // The trays are off: 27 × 60 W of standby on a 50 V bus drooping 1.5 µV per watt.
        let value = try #require(Self.number(in: read.stdout, after: "dmm.dc_voltage = "))
        #expect(abs(value - (50 - 1.5e-6 * 27 * 60)) < 0.001, "\(read.stdout)")
        let stats = try await bench.stats("SIMDMM0001")
        #expect((stats["messages"] as? Int ?? 0) >= 6, "the reading crossed the emulated USB device: \(stats)")
    }

    static func number(in text: String, after prefix: String) -> Double? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        return Double(line.dropFirst(prefix.count).split(separator: " ").first ?? "")
    }

    @Test("python-usbtmc and pyvisa-py read the same identity and values from the emulated device as we do")
    func peersAgree() async throws {
        let bench = try await EmulatedBench()
        defer { bench.stop() }
        let ours = try await run(
            ["read", "dmm.dc_voltage", "gauge.pressure", "--station", bench.station], environment: bench.environment)
        #expect(ours.status == 0, "\(ours.stderr)")
        let voltage = try #require(Self.number(in: ours.stdout, after: "dmm.dc_voltage = "))
        let listed = try await run(["instruments"], environment: bench.environment)
        #expect(listed.stdout.contains("*IDN? Simulated Instruments 34465A, serial SIMDMM0001, firmware 1.0.0"))
        for library in ["usbtmc", "pyvisa"] {
            let (status, output) = try await runProgram(
                try program("python3"),
                [
                    "\(repositoryRoot)/Tests/AcceptanceCLITests/Peers/usbtmc_peer.py", "--library", library,
                    "--resource", "2a8d:0101:SIMDMM0001", "--query", "*IDN?", "--query", "MEAS:VOLT:DC?",
                    "--query", "SYST:ERR?",
                ], environment: ProcessInfo.processInfo.environment.merging(bench.environment) { $1 })
            #expect(status == 0, "\(library): \(output)")
            let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("{") })
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let answers = try #require(object["answers"] as? [String])
            #expect(answers.count == 3)
            #expect(answers.first == "Simulated Instruments,34465A,SIMDMM0001,1.0.0")
            #expect(abs((Double(answers[1]) ?? 0) - voltage) < 0.0001, "\(library) read \(answers[1]), we \(voltage)")
            #expect(answers[2] == #"+0,"No error""#)
        }
    }

    /// What each fault looks like to the technician, in the instrument's error.
    static let faults: [(String, String)] = [
        ("wrong-btag", "not the request's bTag"), ("bad-inverse", "bTagInverse"),
        ("short", "shorter than the 12-byte header"), ("oversized", "when 4096 were asked for"),
        ("stall", "bulk-IN STALL"), ("silent", "no answer within 3.0 seconds"),
        ("midread", "no answer within 3.0 seconds"),
    ]

    @Test(
        "A hostile reply fails that reading, naming the instrument and command; the next query reads a fresh answer",
        arguments: faults)
    func hostileReplies(fault: String, expected: String) async throws {
        let bench = try await EmulatedBench()
        defer { bench.stop() }
        // Connecting takes 5 answers (*IDN?, then the error queue after *CLS and each of the profile's 3
        // configuration commands) and the first dmm.nplc 2 more: the fault hits the reading of dc_voltage.
        try await bench.fault("SIMDMM0001", fault, after: 7)
        let read = try await run(
            ["read", "dmm.nplc", "dmm.dc_voltage", "dmm.nplc", "--station", bench.station],
            environment: bench.environment)
        #expect(read.status == 2)
        #expect(read.stderr.contains("dmm.dc_voltage") && read.stderr.contains("MEAS:VOLT:DC?"), "\(read.stderr)")
        #expect(read.stderr.contains("USB 2a8d:0101 serial SIMDMM0001"), "\(read.stderr)")
        #expect(read.stderr.contains(expected), "\(read.stderr)")
        // After the abort or clear, the next query gets its own answer (1), not the voltage left over.
        let fresh = read.stdout.split(separator: "\n").filter { $0.hasPrefix("dmm.nplc = 1 ") }
        #expect(fresh.count == 2, "\(read.stdout)")
        let stats = try await bench.stats("SIMDMM0001")
        #expect((stats["faults_fired"] as? Int ?? 0) >= 1, "\(stats)")
    }

    /// A procedure of the DMM alone: a setting written (so there is something to clean up), a soak sampled, and a
    /// cleanup step that needs the DMM's own answer to a query (a stale voltage would fail it).
    static let soak = """
        id: dmm-soak
        title: DMM soak
        version: 1.0.0
        rack: gb200-nvl72
        main:
          - set: dmm.nplc
            value: 1
            name: DMM to 1 PLC
          - sample: [dmm.dc_voltage]
            every: 1 s
            for: 2 min
            name: Busbar soak
        cleanup:
          - check: dmm.nplc == 1
            name: DMM answers its own query after the fault
        """

    @Test(
        "A hostile reply during a run ends the step in ERROR naming the instrument; cleanup gets fresh answers",
        arguments: faults)
    func hostileRepliesDuringARun(fault: String, expected: String) async throws {
        let bench = try await EmulatedBench()
        defer { bench.stop() }
        let folder = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: folder + "/procedures", withIntermediateDirectories: true)
        try Self.soak.write(toFile: folder + "/procedures/dmm-soak.yaml", atomically: true, encoding: .utf8)
        let station = folder + "/dmm-bench.yaml"
        try """
        station: dmm-bench
        rack: gb200-nvl72
        instruments:
          dmm:
            scpi: {usb: 2a8d:0101, serial: SIMDMM0001}
            calibration: {certificate: SIMULATED-DMM, due: 2099-12-31}
        waive:
          coldplate-leak: a DMM on the bench, no rack
          cdu-leak: a DMM on the bench, no rack
          loop-overpressure: a DMM on the bench, no rack
        """.write(toFile: station, atomically: true, encoding: .utf8)
        let reports = temporaryDirectory()
        let running = try Running(
            [
                "run", "dmm-soak", "--procedures", folder + "/procedures", "--station", station, "--time-scale", "20",
                "--report-dir", reports,
            ], directory: temporaryDirectory(), environment: bench.environment)
        let run = try await runFolderAppearing(in: reports)
        _ = try await waitFor(run + "/journal.jsonl") { sampleCount($0) >= 2 }
        try await bench.fault("SIMDMM0001", fault)
        let status = try await running.wait(seconds: 60)
        #expect(status == 2, "\(running.stdout)")
        let record = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/record.json")))
                as? [String: Any])
        let steps = try #require(record["steps"] as? [[String: Any]])
        let soak = try #require(steps.first { $0["name"] as? String == "Busbar soak" })
        let error = soak["error"] as? String ?? ""
        #expect(soak["verdict"] as? String == "ERROR")
        #expect(error.contains("device 'dmm' (USB 2a8d:0101 serial SIMDMM0001") && error.contains(expected), "\(error)")
        let cleanup = try #require(steps.first { $0["name"] as? String == "DMM answers its own query after the fault" })
        #expect(cleanup["verdict"] as? String == "PASS", "\(cleanup)")
        #expect(record["cleanup_completed"] as? Bool == true)
    }

    @Test(
        "leak-test and busbar-voltage pass with their instruments over USB; the record lists each with its calibration")
    func proceduresOverUSB() async throws {
        // At 5× (not 20×): the rack's interlocks poll 27 BMCs over HTTPS, and a busy machine must not make a
        // 10 s staleness bound look like a lost sensor.
        let bench = try await EmulatedBench(redfish: true, scale: "5")
        defer { bench.stop() }
        for (procedure, instrument) in [("leak-test", "gauge"), ("busbar-voltage", "dmm")] {
            let reports = temporaryDirectory()
            let result = try await run(
                [
                    "run", procedure, "--station", bench.station, "--time-scale", "5", "--rack-serial", "NVL72-USB-01",
                    "--report-dir", reports,
                ] + (procedure == "leak-test" ? ["--param", "hold=30s"] : []),
                environment: bench.environment)
            #expect(result.status == 0, "\(procedure): \(result.stdout)\(result.stderr)")
            let record = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: try runFolder(in: reports) + "/record.json")))
                    as? [String: Any])
            let instruments = try #require(record["instruments"] as? [[String: Any]])
            let used = try #require(instruments.first { $0["name"] as? String == instrument })
            let serial = instrument == "dmm" ? "SIMDMM0001" : "SIMGAUGE0002"
            #expect(used["serial"] as? String == serial)
            #expect((used["connection"] as? String)?.hasPrefix("USB ") == true)
            #expect((used["interface"] as? String)?.contains("USB488") == true)
            #expect((used["calibration_due"] as? String)?.count == 10)
            #expect(used["simulated"] as? Bool == false, "the harness cannot tell an emulated instrument")
            // ... but the station `simulate --station-out` wrote says its rack is a simulator: the run is SIMULATED.
            #expect((record["simulator"] as? String)?.hasPrefix("acceptance simulate on this machine") == true)
        }
    }

    @Test("An instrument unplugged mid-run ends the step in ERROR naming it, and cleanup still runs")
    func unpluggedMidRun() async throws {
        // At 5× (not 20×): the rack's interlocks poll 27 BMCs over HTTPS, and a busy machine must not make a
        // 10 s staleness bound look like a lost sensor.
        let bench = try await EmulatedBench(redfish: true, scale: "5")
        defer { bench.stop() }
        let reports = temporaryDirectory()
        let running = try Running(
            [
                "run", "busbar-voltage", "--station", bench.station, "--time-scale", "5", "--rack-serial",
                "NVL72-USB-02", "--report-dir", reports,
            ], directory: temporaryDirectory(), environment: bench.environment)
        let folder = try await runFolderAppearing(in: reports)
        _ = try await waitFor(folder + "/journal.jsonl", seconds: 60) {
            $0.contains("Busbar while the trays power on") && sampleCount($0) >= 2
        }
        try await bench.fault("SIMDMM0001", "gone")
        let status = try await running.wait(seconds: 120)
        #expect(status == 2, "\(running.stdout)")
        let record = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/record.json")))
                as? [String: Any])
        let steps = try #require(record["steps"] as? [[String: Any]])
        let sampled = try #require(steps.first { $0["name"] as? String == "Busbar while the trays power on" })
        #expect(sampled["verdict"] as? String == "ERROR")
        let error = sampled["error"] as? String ?? ""
        #expect(error.contains("device 'dmm' (USB 2a8d:0101 serial SIMDMM0001"), "\(sampled)")
        #expect(error.contains("MEAS:VOLT:DC?") && error.contains("gone"), "\(sampled)")
        #expect(record["cleanup_completed"] as? Bool == true, "the trays were powered off all the same")
    }
}
