import AcceptanceCore
import Foundation
import Harness
import TestSupport
import Testing

@testable import Reports

@Suite("Reports against peers: OCP schemas, Chromium, the archive")
struct ReportPeerTests {
    @Test(arguments: [
        ("leak-test", "nominal"), ("leak-test", "loop-leak"), ("leak-test", "cdu-silent"),
        ("bmc-inventory", "gpu-missing"), ("power-on", "tray-stuck"),
    ])
    func ocpStreamValidatesAgainstTheOCPSchemas(procedure: String, scenario: String) async throws {
        let (record, folder) = try await bundle(procedure, scenario: scenario, key: nil)
        let (status, output) = try await runProgram(
            try program("python3"),
            [
                "\(repositoryRoot)/Tests/ReportsTests/Peers/ocp_validate.py", "\(folder)/ocp.jsonl",
                shared("conformance/ocp-tv"),
            ])
        #expect(status == 0, "\(procedure)/\(scenario): \(output.suffix(3000))")
        #expect(output.contains(" 0 error(s)"))
        let lines = try String(contentsOfFile: "\(folder)/ocp.jsonl", encoding: .utf8).split(separator: "\n")
        let end = try JSONValue.parse(Array(try #require(lines.last).utf8))
        let expected =
            switch record.verdict {
            case .pass: "PASS"
            case .fail: "FAIL"
            default: "NOT_APPLICABLE"
            }
        #expect(end["testRunArtifact"]?["testRunEnd"]?["result"]?.string == expected)
        if scenario == "loop-leak" {
            #expect(lines.contains { $0.contains("\"measurementSeriesElement\"") })
            #expect(lines.contains { $0.contains("\"LESS_THAN_OR_EQUAL\"") && $0.contains("Pressure decay over hold") })
        }
    }

    @Test("junitparser reads one case per measurement and member, failures with value, limit and unit, wall times")
    func junitAsACIToolReadsIt() async throws {
        let (record, folder) = try await bundle("leak-test", scenario: "loop-leak", key: nil)
        #expect(record.clock.elapsedSeconds > 600)
        let (status, output) = try await runProgram(
            try program("python3"), ["\(repositoryRoot)/Tests/ReportsTests/Peers/junit_read.py", "\(folder)/junit.xml"])
        #expect(status == 0, "\(output)")
        let parsed = try JSONValue.parse(Array(output.utf8))
        let cases = parsed["cases"]?.array ?? []
        let decay = try #require(cases.first { $0["name"]?.string == "Pressure decay over hold" })
        #expect(decay["classname"]?.string == "leak-test.Hold")
        #expect(decay["result"]?.string == "failure")
        let message = decay["message"]?.string ?? ""
        #expect(message.contains("kPa") && message.contains("limit ≤ 2 kPa"), "\(message)")
        // One case per judged measurement of the step, not one for the step.
        #expect(cases.filter { $0["classname"]?.string == "leak-test.Hold" }.count == 4)
        // Wall-clock seconds: the cases share the steps' wall time, which is part of the run's, not the 12 simulated
        // minutes (compared with the record's own figures, not with a bound: the machine may be busy).
        let total = cases.compactMap { $0["time"]?.number }.reduce(0, +)
        #expect(
            total <= record.clock.wallSeconds + 0.05, "times are wall-clock: \(total) of \(record.clock.wallSeconds)")
        #expect(record.clock.wallSeconds < record.clock.elapsedSeconds || total < record.clock.elapsedSeconds - 1)
        #expect(parsed["properties"]?["simulated"]?.string == "true")
        #expect(!cases.contains { ($0["name"]?.string ?? "").hasPrefix("main.") }, "no step numbers in names")

        let (_, shelves) = try await bundle("power-on", scenario: "tray-stuck", key: nil)
        let (_, members) = try await runProgram(
            try program("python3"),
            ["\(repositoryRoot)/Tests/ReportsTests/Peers/junit_read.py", "\(shelves)/junit.xml"])
        let memberCases = try JSONValue.parse(Array(members.utf8))["cases"]?.array ?? []
        #expect(memberCases.contains { $0["name"]?.string == "Compute trays On [compute01]" }, "a case per member")
    }

    @Test func theFailedLeakTestReportShowsThePressureCurveCrossingItsLimit() async throws {
        let (record, folder) = try await bundle(scenario: "loop-leak", key: nil)
        #expect(record.verdict == .fail)
        let html = try String(contentsOfFile: "\(folder)/report.html", encoding: .utf8)
        #expect(!html.contains("<script"), "no scripts")
        #expect(
            !html.contains("http://") || html.contains("xmlns=\"http://www.w3.org/2000/svg\""), "no external resources")
        #expect(html.contains("Pressure decay over hold ≤ 2 kPa: stays above"))
        // Render it as a person would see it, in headless Chromium, and look at the pixels.
        let png = temporaryDirectory() + "/report.png"
        let (status, output) = try await runProgram(
            try program("chromium"),
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,2400",
                "--screenshot=\(png)", "file://\(folder)/report.html",
            ])
        #expect(status == 0, "\(output.suffix(2000))")
        let script = """
            import sys
            from PIL import Image
            im = Image.open(sys.argv[1]).convert("RGB")
            w, h = im.size
            px = im.load()
            def near(c, t): return all(abs(a - b) <= 40 for a, b in zip(c, t))
            blue = [(x, y) for y in range(h) for x in range(0, w, 2) if near(px[x, y], (9, 105, 218))]
            red = [(x, y) for y in range(h) for x in range(0, w, 2) if near(px[x, y], (207, 34, 46))]
            print("size", w, h, "blue", len(blue), "red", len(red))
            # The curve starts above the decay limit line and ends below it: in image rows, above means smaller y.
            # Take the plot's leftmost and rightmost blue pixels; the limit's red dashes span the plot width.
            xs = sorted(x for x, _ in blue)
            left = [y for x, y in blue if x <= xs[0] + 6]
            right = [y for x, y in blue if x >= xs[-1] - 6]
            plot_red = [(x, y) for x, y in red if min(left) - 200 < y < max(right) + 50 and xs[0] < x < xs[-1]]
            level = sorted(y for _, y in plot_red)
            print("curve starts at y", min(left), "ends at y", max(right), "limit rows", level[:1], level[-1:])
            crosses = any(min(left) < y < max(right) for y in level)
            print("crosses" if crosses else "does not cross")
            sys.exit(0 if blue and red and crosses else 1)
            """
        let checker = temporaryDirectory() + "/pixels.py"
        try script.write(toFile: checker, atomically: true, encoding: .utf8)
        let (seen, report) = try await runProgram(try program("python3"), [checker, png])
        #expect(seen == 0, "\(report)")
        #expect(report.contains("crosses"))
    }

    @Test func theArchiveFindsARacksRunsAcrossProceduresAndRefusesTamperedBundles() async throws {
        let keys = try Keys()
        let keyring = try Keyring.load(path: keys.keyring)
        let archive = try FolderArchive(directory: temporaryDirectory() + "/archive")
        let rack = "RACK-\(UUID().uuidString.prefix(6))"
        let (_, leak) = try await bundle(scenario: "loop-leak", key: keys.stationKey, rack: rack)
        let (_, inventory) = try await bundle("bmc-inventory", key: keys.stationKey, rack: rack)
        let (_, otherRack) = try await bundle("leak-detectors", key: keys.stationKey, rack: "OTHER-0001")
        for folder in [leak, inventory, otherRack] {
            guard case .added = try await archive.add(bundle: folder, keyring: keyring, allowSimulated: true) else {
                Issue.record("\(folder) was not added")
                continue
            }
        }
        // Without saying so, a run on the simulated rack is not archived as evidence.
        do {
            _ = try await archive.add(bundle: otherRack, keyring: keyring)
        } catch {
            #expect(error.description.contains("SIMULATED"))
        }
        let runs = try await archive.list(.init(rack: rack))
        #expect(Set(runs.map(\.procedure)) == ["leak-test", "bmc-inventory"])
        #expect(try await archive.list(.init(rack: rack, verdict: "fail")).map(\.procedure) == ["leak-test"])
        #expect(try await archive.list(.init(procedure: "leak-detectors")).count == 1)
        #expect(try await archive.list(.init(since: Date().addingTimeInterval(86_400))).isEmpty)
        // Adding again changes nothing; an approval added later is stored beside it.
        try BundleVerifier.approve(
            folder: leak, key: try SigningKeys.loadPrivate(keys.approverKey), approver: "QA",
            meaning: "reviewed and approved")
        guard
            case let .alreadyArchived(_, newFiles) = try await archive.add(
                bundle: leak, keyring: keyring, allowSimulated: true)
        else {
            Issue.record("a bundle was archived twice")
            return
        }
        #expect(newFiles == [ReportBundle.approvalFile])
        #expect(try await archive.list(.init(rack: rack, procedure: "leak-test")).first?.approved == true)
        // A tampered bundle is refused, naming why.
        let record = "\(inventory)/record.json"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: record))
        bytes[10] ^= 0x20
        try bytes.write(to: URL(fileURLWithPath: record))
        await #expect(throws: ArchiveError.self) {
            try await archive.add(bundle: inventory, keyring: keyring, allowSimulated: true)
        }
        do {
            _ = try await archive.add(bundle: inventory, keyring: keyring, allowSimulated: true)
        } catch {
            #expect(error.description.contains("does not verify"))
            #expect(error.description.contains("record.json"))
        }
        // Export gives back a bundle that verifies, with the tools and with OpenSSL.
        let leakRun = try #require(runs.first { $0.procedure == "leak-test" })
        let exported = temporaryDirectory() + "/exported"
        _ = try await archive.export(leakRun.runID, to: exported)
        #expect(BundleVerifier.verify(folder: exported, keyring: keyring).verified)
        let (status, output) = try await trustedVerify(exported, key: keys.stationPublic)
        #expect(status == 0, "\(output)")
        await #expect(throws: ArchiveError.self) { try await archive.export(leakRun.runID, to: exported) }
        // Stored objects are read-only, by content hash.
        let files = try await archive.find(leakRun.runID).files
        let object = archive.objectPath(files[0].sha256)
        #expect(FileManager.default.isWritableFile(atPath: object) == false || getuid() == 0)
        #expect(try ReportBundle.sha256(file: object) == files[0].sha256)
    }
}
