import AcceptanceCore
import Foundation
import Harness
import InstrumentCore
import InstrumentTransport

/// SCPI queries per second through the harness's USBTMC client (libusb) and through pyvisa-py and python-usbtmc,
/// against the same instrument emulated with umockdev (Tests/AcceptanceCLITests/Peers/usbtmc_device.py, forwarding
/// to `acceptance simulate`'s DMM). Each client is a process of its own under umockdev's preload: this benchmark
/// starts the simulator and the emulated device, then runs itself (`usb-client`) and the peers in turn.
enum USBBench {
    static let queries = 2_000
    static let rounds = 3

    /// The child side: opens the instrument through libusb and times `count` queries, raw (`MEAS:VOLT:DC?` alone)
    /// and as the harness reads a point (the query, then `SYST:ERR?`). Prints two numbers: queries per second.
    static func client(resource: String, count: Int) async {
        let parts = resource.split(separator: ":", maxSplits: 2).map(String.init)
        guard parts.count == 3, let id = USBID.parse("\(parts[0]):\(parts[1])") else {
            print("error: resource is VID:PID:SERIAL")
            exit(64)
        }
        let port = USBTMCPort(vendor: id.vendor, product: id.product, serial: parts[2])
        do {
            _ = try await port.open()
            let raw = try await wallSeconds {
                for _ in 0..<count { _ = try await port.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .seconds(2)) }
            }
            let checked = try await wallSeconds {
                for _ in 0..<count {
                    _ = try await port.transact(
                        [SCPIMessage("MEAS:VOLT:DC?"), SCPIMessage("SYST:ERR?")], timeout: .seconds(2))
                }
            }
            print("\(Double(count) / raw) \(Double(2 * count) / checked)")
        } catch {
            print("error: \(error)")
        }
        await port.close()
    }

    static func run(root: Workspace) async throws {
        print("\nSCPI over USBTMC through the real libusb, against one DMM emulated with umockdev")
        let repository = URL(fileURLWithPath: root.fixtures).deletingLastPathComponent().path
        let bridge = "\(repository)/Tests/AcceptanceCLITests/Peers/usbtmc_device.py"
        let peer = "\(repository)/Tests/AcceptanceCLITests/Peers/usbtmc_peer.py"
        let folder = NSTemporaryDirectory() + "acceptance-bench-usb-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let own = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let acceptance = own.deletingLastPathComponent().appendingPathComponent("acceptance").path
        guard FileManager.default.isExecutableFile(atPath: acceptance),
            FileManager.default.fileExists(atPath: "/usr/bin/python3"), FileManager.default.fileExists(atPath: bridge)
        else {
            print("  skipped: needs the acceptance binary beside this one, Debian's python3 and \(bridge)")
            return
        }
        let simulator = Process()
        simulator.executableURL = URL(fileURLWithPath: acceptance)
        simulator.arguments = [
            "simulate", "--port", "0", "--redfish-port", "-1", "--scpi-port", "0", "--bench-out",
            "\(folder)/bench.json", "--fixtures", root.fixtures, "--procedures", root.procedures,
        ]
        simulator.standardOutput = FileHandle.nullDevice
        simulator.standardError = FileHandle.nullDevice
        try simulator.run()
        defer { simulator.terminate() }
        var scpi: String?
        for _ in 0..<200 where scpi == nil {
            try await Task.sleep(for: .milliseconds(50))
            if let data = FileManager.default.contents(atPath: "\(folder)/bench.json"),
                let bench = try? JSONSerialization.jsonObject(with: data) as? [[String: String]]
            {
                scpi = bench.first { $0["name"] == "dmm" }?["scpi"]
            }
        }
        guard let scpi else {
            print("  skipped: the simulator did not serve its DMM")
            return
        }
        let device = Process()
        device.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        device.arguments = [bridge, "--device", "2a8d:0101:SIMDMM0001=\(scpi)"]
        let control = Pipe()
        let ready = Pipe()
        device.standardInput = control
        device.standardOutput = ready
        device.standardError = FileHandle.nullDevice
        try device.run()
        defer {
            try? control.fileHandleForWriting.close()
            device.terminate()
        }
        let line = ready.fileHandleForReading.availableData
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
            let directory = object["umockdev_dir"] as? String
        else {
            print("  skipped: umockdev did not start (bash .ci/setup installs it)")
            return
        }
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = "libumockdev-preload.so.0"
        environment["UMOCKDEV_DIR"] = directory
        var ours: [Double] = []
        var oursChecked: [Double] = []
        var peers: [String: [Double]] = [:]
        for _ in 0..<rounds {
            let mine = lastLine(
                own.path, ["usb-client", "2a8d:0101:SIMDMM0001", "\(queries)"], environment: environment)
            let figures = mine?.split(separator: " ").compactMap { Double($0) } ?? []
            if figures.count == 2 {
                ours.append(figures[0])
                oursChecked.append(figures[1])
            } else {
                print("  our client failed: \(mine ?? "no output")")
            }
            for library in ["pyvisa", "usbtmc"] {
                let text = lastLine(
                    "/usr/bin/env",
                    [
                        "python3", peer, "--library", library, "--resource", "2a8d:0101:SIMDMM0001", "--query",
                        "MEAS:VOLT:DC?", "--repeat", "\(queries)",
                    ], environment: environment)
                if let text, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                    let seconds = object["seconds"] as? Double, let count = object["queries"] as? Int, seconds > 0
                {
                    peers[library, default: []].append(Double(count) / seconds)
                } else {
                    print("  \(library) failed: \(text ?? "no output")")
                }
            }
        }
        print("  \(queries) queries of MEAS:VOLT:DC? per client and round, \(rounds) rounds alternating; median q/s:")
        print("  harness USBTMC client (libusb, own thread):      \(format(median(ours), 0)) /s")
        print("  harness, reading a point (query + SYST:ERR?):    \(format(median(oursChecked), 0)) exchanges/s")
        print("  pyvisa-py 0.8.1 (pyusb):                         \(format(median(peers["pyvisa"] ?? []), 0)) /s")
        print("  python-usbtmc 0.8 (pyusb):                       \(format(median(peers["usbtmc"] ?? []), 0)) /s")
        print("  (every exchange crosses the emulated device, a Python process, and the simulator's SCPI socket)")
    }

}
