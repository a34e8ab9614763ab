import AcceptanceCore
import Foundation
import RedfishCore

/// Every Redfish endpoint of a simulated rack: a BMC per compute and switch tray and a controller per power shelf,
/// all sharing one `RedfishRackModel` and the rack's clock. Keyed by device instance name (`compute07`, `shelf03`).
public struct SimulatedRedfishRack: Sendable {
    public let model: RedfishRackModel
    public let services: [String: SimulatedRedfishService]
    public let credentials: (username: String, password: String)

    /// - Parameters:
    ///   - password: what every simulated BMC accepts; a fresh random one per rack unless given, so a test can
    ///     search the run's files for it.
    public init(
        scenario: RedfishSettings, clock: any RunClock, manifest: FirmwareManifest?, username: String = "admin",
        password: String? = nil
    ) {
        let password = password ?? Self.randomPassword()
        credentials = (username, password)
        let model = RedfishRackModel(settings: scenario, clock: clock, manifest: manifest)
        self.model = model
        var services: [String: SimulatedRedfishService] = [:]
        func behaviour(for device: String) -> RedfishServiceBehaviour {
            var behaviour = RedfishServiceBehaviour(username: username, password: password)
            behaviour.pageSize = scenario.pageSize
            behaviour.delaySeconds = scenario.latencySeconds
            for fault in scenario.faults where fault.device == device {
                switch fault {
                case .silent: behaviour.silent = true
                case let .slow(_, seconds): behaviour.delaySeconds += seconds
                case let .unavailable(_, count, retryAfter):
                    behaviour.unavailableCount = count
                    behaviour.retryAfterSeconds = retryAfter
                default: break
                }
            }
            return behaviour
        }
        for number in 1...18 {
            let name = RackProfile.DeviceGroup.memberName(prefix: "compute", number: number)
            services[name] = SimulatedRedfishService(
                tree: TrayBMCTree(model: model, name: name), clock: clock,
                behaviour: behaviour(for: name))
        }
        for number in 1...9 {
            let name = RackProfile.DeviceGroup.memberName(prefix: "switch", number: number)
            services[name] = SimulatedRedfishService(
                tree: TrayBMCTree(model: model, name: name), clock: clock,
                behaviour: behaviour(for: name))
        }
        for number in 1...model.shelfCount {
            let name = RackProfile.DeviceGroup.memberName(prefix: "shelf", number: number)
            services[name] = SimulatedRedfishService(
                tree: PowerShelfTree(model: model, number: number), clock: clock,
                behaviour: behaviour(for: name))
        }
        self.services = services
    }

    static func randomPassword() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return "sim-" + String((0..<20).map { _ in alphabet.randomElement() ?? "x" })
    }

    /// A technician's hands, for prompts confirmed in simulation: `remove-supply 1` pulls supply 1 from every shelf,
    /// `reseat-supply 1` puts it back. Returns false for an action the simulator does not know.
    @discardableResult
    public func perform(manualAction: String) -> Bool {
        let words = manualAction.split(separator: " ").map(String.init)
        guard words.count == 2, let supply = Int(words[1]), (1...6).contains(supply) else { return false }
        switch words[0] {
        case "remove-supply": model.setSupply(shelf: nil, supply: supply, present: false)
        case "reseat-supply": model.setSupply(shelf: nil, supply: supply, present: true)
        default: return false
        }
        return true
    }
}

/// A DMTF mockup folder (`index.json` per resource, as in `public-rackmount1`) as a read-only tree, so the simulator
/// can serve any published shape.
public struct MockupTree: RedfishTree {
    public let resources: [String: JSONValue]

    public enum LoadError: Error, Sendable, CustomStringConvertible {
        case notAMockup(String)
        case badJSON(file: String, message: String)

        public var description: String {
            switch self {
            case let .notAMockup(path): "\(path) has no redfish/v1/index.json or index.json: not a mockup folder"
            case let .badJSON(file, message): "\(file): \(message)"
            }
        }
    }

    public init(folder: String) throws(LoadError) {
        var root = folder
        if FileManager.default.fileExists(atPath: "\(folder)/redfish/v1/index.json") { root = "\(folder)/redfish/v1" }
        guard FileManager.default.fileExists(atPath: "\(root)/index.json") else { throw .notAMockup(folder) }
        var resources: [String: JSONValue] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            guard relative == "index.json" || relative.hasSuffix("/index.json") else { continue }
            let file = "\(root)/\(relative)"
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            let json: JSONValue
            do {
                json = try JSONValue.parse([UInt8](data))
            } catch {
                throw .badJSON(file: file, message: error.message)
            }
            let directory = relative == "index.json" ? "" : "/" + String(relative.dropLast("/index.json".count))
            let path =
                json["@odata.id"]?.string.map { $0.hasSuffix("/") && $0.count > 1 ? String($0.dropLast()) : $0 }
                ?? "/redfish/v1\(directory)"
            resources[path] = json
        }
        self.resources = resources
    }

    public func resource(at path: String) -> JSONValue? { resources[path] }
    public var schemaNamespaces: [String] { Redfish.namespaces(of: resources) }
    public func patch(_ path: String, _ body: JSONValue) -> RedfishTreeOutcome {
        resources[path] == nil
            ? .notFound
            : .badRequest(
                messageID: "Base.1.16.0.PropertyNotWritable",
                message: "This mockup is read-only.")
    }
    public func post(_ path: String, _ body: JSONValue) -> RedfishTreeOutcome { .notAllowed }
}
