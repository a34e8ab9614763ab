import AcceptanceCore
import Foundation
import Yams

/// A FAT line (`Fixtures/lines/<id>.yaml`): the bays one station PC drives, each with its own rack, bound by its
/// own station file (devices, instruments, credentials, key), or the built-in simulated rack.
///
/// ```yaml
/// line: line-1
/// title: FAT line 1, bays 1-8
/// bays:
///   1: {station: ../stations/line-1-bay-1.yaml}
///   2: {simulated: true}          # the built-in simulated rack (CI, training)
/// ```
public struct LineConfiguration: Sendable {
    public var id: String
    public var title: String
    public var bays: [Bay]
    /// Equipment the bays share (`reference gauge: {devices: [gauge]}`): steps that use any of its devices take
    /// turns, one bay at a time.
    public var resources: [Resource] = []
    /// The line's archive (a folder, or a PostgreSQL address every station shares): `acceptance archive --line`
    /// uses it, and the reports of bays whose station names no archive list the rack's earlier runs from it.
    public var archive: ArchiveLocation?
    public var file: String

    public struct Resource: Sendable, Hashable {
        public var name: String
        public var devices: Set<String>

        public init(name: String, devices: Set<String>) {
            self.name = name
            self.devices = devices
        }
    }

    public struct Bay: Sendable, Hashable {
        public var number: Int
        /// The bay's station file (absolute, or relative to the line file), or nil for a simulated rack.
        public var station: String?
        /// `line-1 bay 3`: the station name runs on a simulated bay record.
        public var name: String
    }

    public static func load(path: String) throws(DiagnosticsError) -> LineConfiguration {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        var line = LineConfiguration(id: "", title: "", bays: [], file: path)
        var entries: [(number: Int, station: String?, node: Node)] = []
        if let root = source?.treeForChecking, let fields = reader.mapping(root, "line") {
            reader.rejectUnknownKeys(
                fields,
                allowed: ["line", "title", "description", "bays", "resources", "archive", "archive_password_file"],
                in: "line")
            var passwordFile: String?
            for (key, _, value) in fields {
                switch key {
                case "line": line.id = reader.scalar(value, "line") ?? ""
                case "title": line.title = reader.scalar(value, "title") ?? ""
                case "description": _ = reader.scalar(value, "description")
                case "archive":
                    line.archive = reader.archiveLocation(value, relativeTo: path).map { ArchiveLocation($0) }
                case "archive_password_file":
                    passwordFile = reader.scalar(value, "archive_password_file").map { relative($0, to: path) }
                case "resources":
                    for (name, _, resourceNode) in reader.mapping(value, "resources") ?? [] {
                        guard let settings = reader.mapping(resourceNode, "resource '\(name)'") else { continue }
                        reader.rejectUnknownKeys(settings, allowed: ["devices"], in: "resource '\(name)'")
                        var devices = Set<String>()
                        if let list = settings.first(where: { $0.key == "devices" })?.value {
                            for item in reader.sequence(list, "devices") ?? [] {
                                if let device = reader.scalar(item, "device") { devices.insert(device) }
                            }
                        }
                        if devices.isEmpty {
                            reader.error(
                                "resource '\(name)' names the 'devices' it is (devices: [gauge])", at: resourceNode)
                        }
                        line.resources.append(Resource(name: name, devices: devices))
                    }
                case "bays":
                    for (bay, keyNode, bayNode) in reader.mapping(value, "bays") ?? [] {
                        guard let number = Int(bay), (1...64).contains(number) else {
                            reader.error("a bay is numbered 1 to 64, not '\(bay)'", at: keyNode)
                            continue
                        }
                        guard let settings = reader.mapping(bayNode, "bay \(number)") else { continue }
                        reader.rejectUnknownKeys(settings, allowed: ["station", "simulated"], in: "bay \(number)")
                        let station = settings.first { $0.key == "station" }.flatMap {
                            reader.scalar($0.value, "station")
                        }
                        let simulated = settings.first { $0.key == "simulated" }.flatMap {
                            reader.bool($0.value, "simulated")
                        }
                        if (station == nil) == (simulated != true) {
                            reader.error(
                                "bay \(number) is bound to a station file (station: …) or is simulated "
                                    + "(simulated: true): one of the two", at: bayNode)
                        }
                        entries.append((number, station, bayNode))
                    }
                default: break
                }
            }
            line.archive?.passwordFile = passwordFile
            if line.id.isEmpty { reader.error("a line needs 'line: <id>'", at: root) }
            if entries.isEmpty { reader.error("a line lists its 'bays'", at: root) }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        let directory = (path as NSString).deletingLastPathComponent
        line.bays = entries.sorted { $0.number < $1.number }.map { entry in
            let station = entry.station.map { file in
                file.hasPrefix("/") || directory.isEmpty ? file : (directory as NSString).appendingPathComponent(file)
            }
            return Bay(number: entry.number, station: station, name: "\(line.id) bay \(entry.number)")
        }
        return line
    }

    /// The bays `--bays 1-3,5` names (all without it); a bay the line does not have is an error naming those it has.
    public func select(_ text: String?) throws(HarnessError) -> [Bay] {
        guard let text else { return bays }
        var wanted = Set<Int>()
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-", maxSplits: 1).map {
                Int($0.trimmingCharacters(in: .whitespaces))
            }
            guard let low = bounds.first ?? nil, let high = bounds.last ?? nil, low <= high else {
                throw .input("--bays \(text): write bays as 1-8 or 1,3,5")
            }
            wanted.formUnion(low...high)
        }
        let known = Set(bays.map(\.number))
        if let missing = wanted.subtracting(known).min() {
            throw .input(
                "line '\(id)' has no bay \(missing) (it has \(bays.map { String($0.number) }.joined(separator: ", ")))")
        }
        return bays.filter { wanted.contains($0.number) }
    }
}
