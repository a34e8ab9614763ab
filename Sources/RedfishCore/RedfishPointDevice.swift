import AcceptanceCore
import Foundation

/// A BMC or power shelf reached over Redfish: each point is a value inside a resource, read with one GET per
/// resource; writes are PATCHes with `If-Match`; actions are POSTs to the advertised target.
public struct RedfishPointDevice: PointDevice {
    public let name: String
    public let profile: DeviceProfile
    public let client: RedfishClient

    public init(name: String, profile: DeviceProfile, client: RedfishClient) {
        self.name = name
        self.profile = profile
        self.client = client
    }

    public var endpoint: String { "\(client.transport.baseURL), \(profile.model)" }

    /// Resources fetched at once per read: a BMC serves a few requests in parallel, and the HTTP client keeps as
    /// many connections to it.
    static let parallelFetches = 4

    public func read(_ points: [PointDefinition]) async throws(DeviceError) -> [Value] {
        var paths: [String] = []
        for point in points {
            guard let location = point.resource else {
                throw failure(.reading, [point.name], "point has no Redfish resource")
            }
            if !paths.contains(location.path) { paths.append(location.path) }
        }
        let tolerant = Set(points.filter { $0.resource?.ifAbsent != nil }.compactMap { $0.resource?.path })
        // Every resource once, a few at a time; a 404 is "absent" for points that say what absent reads as.
        let client = client
        let results = await BoundedConcurrency.map(paths, limit: Self.parallelFetches) { path in
            do throws(RedfishError) {
                return Result<RedfishResource?, RedfishError>.success(try await client.get(path))
            } catch  where error.kind == .status(404) && tolerant.contains(path) {
                return .success(nil)
            } catch {
                return .failure(error)
            }
        }
        let fetched = Dictionary(uniqueKeysWithValues: zip(paths, results))
        var values: [Value] = []
        for point in points {
            guard let location = point.resource, let result = fetched[location.path] else { continue }
            let resource: RedfishResource?
            switch result {
            case let .success(found): resource = found
            case let .failure(error):
                throw failure(
                    .reading, points.filter { $0.resource?.path == location.path }.map(\.name),
                    error.detail, error)
            }
            guard let resource else {
                guard let absent = location.ifAbsent else {
                    throw failure(.reading, [point.name], "\(location.path) does not exist (HTTP 404)")
                }
                values.append(.text(absent))
                continue
            }
            values.append(try value(of: point, at: location, in: resource))
        }
        return values
    }

    func value(
        of point: PointDefinition, at location: RedfishLocation, in resource: RedfishResource
    ) throws(DeviceError) -> Value {
        guard let json = resource.json.value(at: location.pointer) else {
            if let absent = location.ifAbsent { return .text(absent) }
            throw failure(.reading, [point.name], "\(location.path) has no \(location.pointer)")
        }
        switch (json, location.type) {
        case (.null, _):
            return .missing
        case let (.string(text), .string):
            if !point.states.isEmpty, !point.states.values.contains(text) {
                throw failure(
                    .reading, [point.name],
                    "\(location) is '\(text)', not one of "
                        + point.stateNames.joined(separator: ", "))
            }
            return .text(text)
        case let (.bool(flag), .bool):
            return .bool(flag)
        case let (.number(number), .number), let (.number(number), .integer):
            guard let unit = point.unit else { return .number(number) }
            // A Sensor says its own unit: convert it to the one the profile promises, or refuse.
            var parent = location.pointer
            if !parent.tokens.isEmpty { parent.tokens.removeLast() }
            if let said = resource.json.value(at: parent)?["ReadingUnits"]?.string {
                guard let reported = Self.ucum(said) else {
                    throw failure(
                        .reading, [point.name],
                        "\(location.path) reports ReadingUnits '\(said)', which is not a known unit")
                }
                do {
                    return .quantity(try Quantity(number, reported).converted(to: unit))
                } catch {
                    throw failure(
                        .reading, [point.name], "\(location.path) reports \(said), which is not a \(unit.dimension)")
                }
            }
            return .quantity(Quantity(number, unit))
        default:
            throw failure(
                .reading, [point.name], "\(location) is \(json.serialized.prefix(40)), not a \(Self.typeName(location))"
            )
        }
    }

    static func typeName(_ location: RedfishLocation) -> String {
        switch location.type {
        case .string: "string"
        case .bool: "bool"
        case .number, .integer: "number"
        }
    }

    /// Redfish `ReadingUnits` are UCUM codes: `Cel`, `W`, `kPa`, `L/min`, `%`.
    static func ucum(_ code: String) -> PhysicalUnit? {
        let translated: [String: String] = ["Cel": "°C", "[degF]": "°F", "{rev}/min": "rpm", "RPM": "rpm", "kW": "kW"]
        return PhysicalUnit.named(translated[code] ?? code)
    }

    public func write(_ point: PointDefinition, _ value: Value) async throws(DeviceError) {
        guard let location = point.resource, point.access == .readWrite else {
            throw failure(.writing, [point.name], "point is read-only (\(point.whereabouts))")
        }
        let leaf: JSONValue
        switch value {
        case let .text(text): leaf = .string(text)
        case let .bool(flag): leaf = .bool(flag)
        case let .number(number): leaf = .number(number)
        case let .quantity(quantity):
            do {
                leaf = .number(try point.unit.map { try quantity.converted(to: $0).value } ?? quantity.value)
            } catch {
                throw failure(
                    .writing, [point.name], "\(quantity) is not a \(point.unit?.dimension.description ?? "number")")
            }
        case .missing: throw failure(.writing, [point.name], "no value to write")
        }
        var body = leaf
        for token in location.pointer.tokens.reversed() { body = .object([token: body]) }
        do {
            try await client.patch(location.path, body)
        } catch {
            throw failure(.writing, [point.name], error.detail, error)
        }
    }

    /// Checks the certificate against its pin and logs in (sessions), so a wrong pin or refused login is found
    /// before a run moves anything.
    public func connect() async throws(DeviceError) {
        do {
            try await client.open()
        } catch {
            throw failure(.reading, [], error.detail, error)
        }
    }

    public func perform(_ action: ActionDefinition, value: String?) async throws(DeviceError) {
        guard let target = action.redfish else {
            throw failure(.writing, [action.name], "not a Redfish action (\(action.target))")
        }
        var parameters: [String: JSONValue] = [:]
        if let parameter = action.parameter, let value { parameters[parameter] = .string(value) }
        do {
            try await client.perform(action: target.action, on: target.path, parameters: .object(parameters))
        } catch {
            throw failure(.writing, [action.name], error.detail, error)
        }
    }

    func failure(
        _ operation: DeviceError.Operation, _ points: [String], _ reason: String,
        _ error: RedfishError? = nil
    ) -> DeviceError {
        DeviceError(
            device: name, endpoint: endpoint, operation: operation, points: points, reason: reason, cause: error)
    }
}
