import AcceptanceCore
import Foundation
import Reports
import TestSupport
import Testing

/// Signed bundles that differ by run id and rack, made from one real run by writing its record again with new ids
/// and signing the result with the station key: what a line's many runs give the archive, made in seconds. (The
/// journal inside still names the first run: the archive neither reads nor needs it.)
func bundleVariants(
    count: Int, racks: Int, home: String, key: String, prefix: String
) async throws -> [String] {
    let reports = "\(home)/source"
    let made = try await run([
        "run", "leak-detectors", "--signing-key", key, "--report-dir", reports, "--rack-serial", "\(prefix)-SOURCE-00",
    ])
    guard made.status == 0 else { throw CLIError(message: "source run: \(made.stdout)\(made.stderr)") }
    let source = try runFolder(in: reports)
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(
        positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
        positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    let original = try decoder.decode(
        RunRecord.self, from: try Data(contentsOf: URL(fileURLWithPath: "\(source)/record.json")))
    let signer = BundleSigner(key: try SigningKeys.loadPrivate(key), identity: "station line-1 (test variants)")
    let inputs = BundleInputs(
        procedureFile: "\(repositoryRoot)/Procedures/leak-detectors.yaml", configurationFile: nil,
        harnessVersion: "acceptance (test variants)", harnessBinarySHA256: nil)
    var folders: [String] = []
    for index in 0..<count {
        let folder = "\(home)/bundles/\(prefix)-\(String(format: "%04d", index))"
        try FileManager.default.createDirectory(atPath: "\(home)/bundles", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source, toPath: folder)
        try FileManager.default.removeItem(atPath: "\(folder)/\(ReportBundle.attestationFile)")
        var record = original
        record.runID = "\(original.runID)-\(prefix)-\(index)"
        record.rackSerial = "\(prefix)-RACK-\(String(format: "%02d", index % racks))"
        try encoder.encode(record).write(to: URL(fileURLWithPath: "\(folder)/record.json"))
        try ReportBundle.make(folder: folder, record: record, inputs: inputs, signer: signer)
        folders.append(folder)
    }
    return folders
}

/// The archive a test runs against: a folder, or a database on a throwaway PostgreSQL cluster.
enum ArchiveKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case folder, postgres
    var testDescription: String { rawValue }
}

@Suite("Archives: the folder archive and the factory's PostgreSQL archive behind the same commands", .serialized)
struct ArchiveTests {
    /// Must-show 3: eight stations (processes) add 50 bundles each at once, some the same bundle, one tampered.
    @Test(arguments: ArchiveKind.allCases)
    func eightStationsAddFiftyBundlesEachAtOnce(_ kind: ArchiveKind) async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home)
        let cluster = kind == .postgres ? try await PostgresCluster.start() : nil
        defer { cluster?.stop() }
        let archive = try await cluster?.newDatabase() ?? "\(home)/archive"
        var environment: [String: String] = [:]
        if let cluster { environment["PGPASSFILE"] = try cluster.passwordFile(in: home) }

        let distinct = try await bundleVariants(
            count: 320, racks: 40, home: home, key: "\(home)/keys/line1.key.pem",
            prefix: "L\(kind.rawValue.prefix(1).uppercased())")
        // A copy of bundle 0 with one byte of its record changed: it must be refused, and bundle 0 stored as signed.
        let tampered = "\(home)/tampered"
        try FileManager.default.copyItem(atPath: distinct[0], toPath: tampered)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: "\(tampered)/record.json"))
        bytes[40] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: "\(tampered)/record.json"))

        // Station s adds its own 40, 9 of the next station's (the same bundle from two stations at once) and one
        // more: its first bundle again (station 0: the tampered copy instead).
        var lists: [[String]] = []
        for station in 0..<8 {
            let own = Array(distinct[(station * 40)..<(station * 40 + 40)])
            let next = Array(distinct[(((station + 1) % 8) * 40)..<(((station + 1) % 8) * 40 + 9)])
            lists.append(own + next + [station == 0 ? tampered : own[0]])
        }
        #expect(lists.allSatisfy { $0.count == 50 })
        var processes: [Running] = []
        for list in lists {
            processes.append(
                try Running(
                    ["archive", "add", "--keyring", "\(home)/keyring.yaml", "--allow-simulated", "--archive", archive]
                        + list, directory: temporaryDirectory(), environment: environment))
        }
        var statuses: [Int32] = []
        for process in processes { statuses.append(try await process.wait(seconds: 300)) }
        let stdout = processes.map(\.stdout).joined()
        let stderr = processes.map(\.stderr).joined()
        #expect(statuses == [1, 0, 0, 0, 0, 0, 0, 0], "\(stderr)")
        #expect(processes[0].stderr.contains("refused \(tampered): it does not verify"), "\(processes[0].stderr)")
        #expect(processes[0].stderr.contains("record.json"))
        let archived = stdout.split(separator: "\n").filter { $0.hasPrefix("archived ") }
        let again = stdout.split(separator: "\n").filter { $0.hasPrefix("already archived ") }
        #expect(archived.count == 320, "each bundle archived by exactly one station")
        #expect(again.count == 8 * 50 - 320 - 1)
        if let cluster { #expect(!(stdout + stderr).contains(cluster.password)) }

        // Every bundle there exactly once, found by rack.
        let listed = try await run(["archive", "list", "--archive", archive, "--json"], environment: environment)
        #expect(listed.status == 0, "\(listed.stderr)")
        let runs = try #require(JSONValue.parse(Array(listed.stdout.utf8))["runs"]?.array)
        #expect(runs.count == 320)
        #expect(Set(runs.compactMap { $0["attestation_sha256"]?.string }).count == 320)
        #expect(Set(runs.compactMap { $0["run_id"]?.string }).count == 320)
        let prefix = "L\(kind.rawValue.prefix(1).uppercased())"
        let rack = try await run(
            ["archive", "list", "--archive", archive, "--rack", "\(prefix)-RACK-07"], environment: environment)
        #expect(rack.status == 0, "\(rack.stderr)")
        #expect(rack.stdout.contains("8 runs"), "\(rack.stdout)")
        #expect(rack.stdout.split(separator: "\n").filter { $0.contains("\(prefix)-RACK-07") }.count == 8)

        // Bundle 0 as it was signed, exported whole and checked by OpenSSL through its own verify.sh.
        let exported = "\(home)/exported"
        let runID = try #require(runs.first { $0["rack_serial"]?.string == "\(prefix)-RACK-00" }?["run_id"]?.string)
        let export = try await run(
            ["archive", "export", runID, exported, "--archive", archive], environment: environment)
        #expect(export.status == 0, "\(export.stderr)")
        let (status, output) = try await runProgram(
            try program("sh"), ["\(exported)/verify.sh", "\(home)/keys/line1.pub.pem", exported])
        #expect(status == 0, "\(output)")

        if let cluster {
            // Stored in the database, by content: the files of 320 bundles, each file content once.
            let database = try #require(archive.split(separator: "/").last?.split(separator: "?").first)
            let counts = try await cluster.psql(
                "SELECT (SELECT count(*) FROM acceptance.run), (SELECT count(*) FROM acceptance.file), "
                    + "(SELECT count(*) FROM acceptance.object), "
                    + "(SELECT count(DISTINCT sha256) FROM acceptance.file)", database: String(database))
            let numbers = counts.split(separator: "|").compactMap { Int($0) }
            #expect(numbers.count == 4 && numbers[0] == 320, "\(counts)")
            #expect(numbers.count == 4 && numbers[2] == numbers[3] && numbers[2] < numbers[1], "\(counts)")
            // Nothing stored is changed or removed, even by hand.
            let (deleted, refusal) = try await cluster.psqlStatus(
                "DELETE FROM acceptance.run", database: String(database))
            #expect(deleted != 0 && refusal.contains("only adds"), "\(refusal)")
        }
    }
}

@Suite("The PostgreSQL archive: credentials, migration, a station's rack history", .serialized)
struct PostgresArchiveTests {
    @Test func credentialsNeverShowAndMistakesAreNamed() async throws {
        let home = temporaryDirectory()
        let cluster = try await PostgresCluster.start()
        defer { cluster.stop() }
        let archive = try await cluster.newDatabase()
        var outputs: [String] = []
        func archiveList(_ address: String, _ environment: [String: String]) async throws -> (Int32, String) {
            let result = try await run(
                ["archive", "list", "--archive", address], environment: ["HOME": home].merging(environment) { $1 })
            outputs.append(result.stdout + result.stderr)
            return (result.status, result.stderr)
        }
        // No password anywhere: the server's refusal, and how to give one.
        var (status, stderr) = try await archiveList(archive, [:])
        #expect(status == 2 && stderr.contains("PGPASSWORD"), "\(stderr)")
        // A password in the address is refused, and not repeated.
        let inAddress = archive.replacingOccurrences(of: "qa_archive@", with: "qa_archive:\(cluster.password)@")
        (status, stderr) = try await archiveList(inAddress, [:])
        #expect(status != 0 && stderr.contains("has a password in it"), "\(stderr)")
        // A password file others can read is not used.
        let file = try cluster.passwordFile(in: home)
        chmod(file, 0o644)
        (status, stderr) = try await archiveList(archive, ["PGPASSFILE": file])
        #expect(status == 2 && stderr.contains("chmod 600 \(file)"), "\(stderr)")
        chmod(file, 0o600)
        // A wrong password: the server says so.
        (status, stderr) = try await archiveList(archive, ["PGPASSWORD": "not-the-password"])
        #expect(status == 2 && stderr.contains("password authentication failed"), "\(stderr)")
        // The right one, on a database that holds no archive yet: nothing is created by reading.
        (status, stderr) = try await archiveList(archive, ["PGPASSFILE": file])
        #expect(status == 2 && stderr.contains("holds no acceptance archive yet"), "\(stderr)")
        let database = try #require(archive.split(separator: "/").last?.split(separator: "?").first)
        #expect(
            try await cluster.psql("SELECT to_regclass('acceptance.run') IS NULL", database: String(database)) == "t")
        for output in outputs { #expect(!output.contains(cluster.password), "\(output)") }
    }

    @Test func aFolderArchiveMigratesVerifiedAndAStationReadsItsRacksHistoryFromTheServer() async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home)
        let cluster = try await PostgresCluster.start()
        defer { cluster.stop() }
        let archive = try await cluster.newDatabase()
        let passwordFile = try cluster.passwordFile(in: home)
        let environment = ["PGPASSFILE": passwordFile]

        // A folder archive of five runs (simulated: added with --allow-simulated) moves to the server.
        let folder = "\(home)/folder-archive"
        let bundles = try await bundleVariants(
            count: 5, racks: 5, home: home, key: "\(home)/keys/line1.key.pem", prefix: "MIG")
        let added = try await run(
            ["archive", "add", "--archive", folder, "--keyring", "\(home)/keyring.yaml", "--allow-simulated"] + bundles)
        #expect(added.status == 0, "\(added.stderr)")
        let migrate = ["archive", "migrate", "--from", folder, "--to", archive, "--keyring", "\(home)/keyring.yaml"]
        // Simulated runs are refused unless the migration says they may go: nothing is copied quietly.
        let refused = try await run(migrate, environment: environment)
        #expect(refused.status == 1 && refused.stderr.contains("SIMULATED"), "\(refused.stderr)")
        #expect(refused.stdout.contains("0 copied, 0 already there, 5 refused"), "\(refused.stdout)")
        let copied = try await run(migrate + ["--allow-simulated"], environment: environment)
        #expect(copied.status == 0, "\(copied.stderr)")
        #expect(copied.stdout.contains("5 copied, 0 already there, 0 refused"), "\(copied.stdout)")
        let again = try await run(migrate + ["--allow-simulated"], environment: environment)
        #expect(again.stdout.contains("0 copied, 5 already there, 0 refused"), "\(again.stdout)")
        let listed = try await run(["archive", "list", "--archive", archive, "--json"], environment: environment)
        let runs = try #require(JSONValue.parse(Array(listed.stdout.utf8))["runs"]?.array)
        let fromFolder = try await run(["archive", "list", "--archive", folder, "--json"])
        let folderRuns = try #require(JSONValue.parse(Array(fromFolder.stdout.utf8))["runs"]?.array)
        #expect(
            Set(runs.compactMap { $0["attestation_sha256"]?.string })
                == Set(folderRuns.compactMap { $0["attestation_sha256"]?.string }))
        #expect(runs.count == 5)

        // A station whose archive is the server: the second run's report lists the first, read from the server.
        let (simulator, port) = try await startSimulatorOnAnyPort()
        defer { simulator.signal(SIGTERM) }
        let station = try stationFile(
            port: port,
            more: "signing_key: \(home)/keys/line1.key.pem\narchive: \(archive)\narchive_password_file: \(passwordFile)"
        )
        func leakTest(_ reports: String) async throws -> String {
            let result = try await run([
                "run", "leak-test", "--station", station, "--time-scale", "20", "--param", "hold=30s",
                "--rack-serial", "NVL72-PG-0001", "--report-dir", reports,
            ])
            #expect(result.status == 0, "\(result.stdout.suffix(2000))\(result.stderr)")
            return try runFolder(in: reports)
        }
        let first = try await leakTest("\(home)/first")
        let add = try await run(["archive", "add", first, "--keyring", "\(home)/keyring.yaml", "--station", station])
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdout.contains("archived ") && add.stdout.contains("rack NVL72-PG-0001"), "\(add.stdout)")
        let second = try await leakTest("\(home)/second")
        let page = try String(contentsOfFile: "\(second)/report.html", encoding: .utf8)
        let firstID = (first as NSString).lastPathComponent
        #expect(page.contains("<table id=\"previous-runs\">"))
        #expect(page.contains(firstID))
        #expect(!page.contains(cluster.password))
        let show = try await run(["archive", "show", firstID, "--station", station])
        #expect(show.status == 0 && show.stdout.contains("rack         NVL72-PG-0001"), "\(show.stdout)\(show.stderr)")
        #expect(show.stdout.contains("record.json"))
    }
}
