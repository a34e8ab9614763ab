import Foundation
import ModbusCore
import RedfishCore
import Testing

@testable import AcceptanceCore

/// A rack with a group of Redfish trays, beside the test bench's Modbus device.
func redfishBench() throws -> TestBench {
    let bench = try TestBench()
    try """
    id: test-rack
    title: Test rack
    devices:
      dev: {model: test-device}
    groups:
      trays: {model: test-tray, prefix: tray, count: 3, description: Tray BMC}
    """.write(toFile: "\(bench.directory)/racks/test-rack.yaml", atomically: true, encoding: .utf8)
    try """
    model: test-tray
    kind: tray
    protocol: redfish
    points:
      power: {path: /redfish/v1/Systems/1, pointer: /PowerState, states: [On, Off, PoweringOn]}
      watts: {path: /redfish/v1/Chassis/1/Sensors/Power, pointer: /Reading, unit: W}
      version: {path: /redfish/v1/UpdateService/FirmwareInventory/BMC, pointer: /Version}
      gpu: {path: /redfish/v1/Systems/1/Processors/GPU_0, pointer: /Status/State, states: [Enabled, Absent], if_absent: Absent}
    actions:
      reset: {path: /redfish/v1/Systems/1, action: ComputerSystem.Reset, parameter: ResetType, values: [On, ForceOff]}
    """.write(toFile: "\(bench.directory)/devices/test-tray.yaml", atomically: true, encoding: .utf8)
    return bench
}

@Suite("Device groups, for_each steps and Redfish profiles")
struct GroupAndRedfishProfileTests {
    @Test func groupsExpandToNumberedMembersAndTheirCountIsASetting() throws {
        let bench = try redfishBench()
        let configuration = try RackConfiguration.load(
            rackID: "test-rack", fixtures: bench.directory, protocols: testProtocols)
        #expect(configuration.rack.group(named: "trays")?.members == ["tray01", "tray02", "tray03"])
        #expect(configuration.resolve("tray02.power")?.point.resource?.path == "/redfish/v1/Systems/1")
        #expect(configuration.resolve("each.power", aliases: ["each": "tray03"])?.device == "tray03")
        let five = try RackConfiguration.load(
            rackID: "test-rack", fixtures: bench.directory, protocols: testProtocols, counts: ["trays": 5])
        #expect(five.rack.devices.filter { $0.group == "trays" }.count == 5)
        #expect(throws: DiagnosticsError.self) {
            try RackConfiguration.load(
                rackID: "test-rack", fixtures: bench.directory, protocols: testProtocols, counts: ["shelves": 2])
        }
    }

    @Test func aForEachProcedureChecksAgainstTheGroupsProfile() throws {
        let bench = try redfishBench()
        let (procedure, _) = try bench.load(
            """
            id: p
            title: P
            version: 1.0.0
            rack: test-rack
            parameters:
              release: {type: text, default: r1, pattern: 'r[0-9]+'}
            main:
              - action: tray.reset
                value: On
                for_each: trays
                as: tray
                concurrency: 2
              - wait-until: each.power == On and each.watts > 100 W
                for_each: trays
                timeout: 1 min
              - firmware: each.version
                release: release
                for_each: trays
            """)
        #expect(procedure.main[0].forEach == Step.ForEach(group: "trays", alias: "tray", concurrency: 2))
        #expect(procedure.main[0].actuates)
        #expect(procedure.deviceGroups == ["trays"])
        #expect(procedure.devices.isEmpty, "member names are not devices")
        #expect(try procedure.resolveTextParameters([:]) == ["release": "r1"])
        #expect(try procedure.resolveTextParameters(["release": "r7"]) == ["release": "r7"])
        #expect(throws: ParameterError.self) { try procedure.resolveTextParameters(["release": "../../etc"]) }
    }

    @Test func forEachMistakesAreReportedWhereTheyAre() throws {
        let bench = try redfishBench()
        let result = try bench.check(
            """
            id: p
            title: P
            version: 1.0.0
            rack: test-rack
            main:
              - action: each.reset
                value: Sideways
                for_each: trays
              - check: each.pwer == On
                for_each: trays
              - prompt: Pull it
                for_each: trays
              - check: each.power == On
                for_each: shelves
              - action: each.explode
                for_each: trays
              - firmware: each.watts
                release: '"r1"'
                for_each: trays
            """)
        let messages = result.diagnostics.map { "\($0.location.line): \($0.message)" }
        #expect(messages.contains { $0.hasPrefix("7:") && $0.contains("Sideways") })
        #expect(messages.contains { $0.hasPrefix("9:") && $0.contains("did you mean 'each.power'") })
        #expect(messages.contains { $0.hasPrefix("11:") && $0.contains("cannot run for_each") })
        #expect(
            messages.contains {
                $0.hasPrefix("13:") && $0.contains("no device group 'shelves'") && $0.contains("trays")
            })
        #expect(
            messages.contains {
                $0.hasPrefix("15:") && $0.contains("unknown action 'each.explode'") && $0.contains("reset")
            })
        #expect(messages.contains { $0.hasPrefix("17:") && $0.contains("firmware versions are text points") })
    }

    @Test func redfishProfileMistakesAreNamed() throws {
        let bench = try redfishBench()
        let path = "\(bench.directory)/devices/bad.yaml"
        try """
        model: bad
        protocol: redfish
        points:
          a: {path: /redfish/v1/Systems/1, pointer: PowerState}
          b: {path: /api/status, pointer: /x}
          c: {path: /redfish/v1/Systems/1, pointer: /x, states: [On, Off], if_absent: Gone}
          d: {path: /redfish/v1/Systems/1, pointer: /x, type: bool, unit: W}
        actions:
          reset: {path: /redfish/v1/Systems/1, action: ComputerSystem.Reset, parameter: ResetType}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try DeviceProfile.load(path: path, protocols: testProtocols)
            Issue.record("a bad profile loaded")
        } catch {
            let messages = error.diagnostics.map { "\($0.location.line): \($0.message)" }
            #expect(messages.contains { $0.hasPrefix("4:") && $0.contains("not a JSON pointer") })
            #expect(messages.contains { $0.hasPrefix("5:") && $0.contains("starts with /redfish/v1") })
            #expect(messages.contains { $0.contains("if_absent 'Gone'") })
            #expect(messages.contains { $0.hasPrefix("7:") && $0.contains("no unit") })
            #expect(messages.contains { $0.hasPrefix("9:") && $0.contains("allowed 'values'") })
        }
    }

    @Test func jsonPointersFollowRFC6901() throws {
        let document = try JSONValue.parse(Array(#"{"a/b": {"m~n": [10, {"x": true}]}, "n": null}"#.utf8))
        #expect(document.value(at: try #require(JSONPointer("/a~1b/m~0n/0"))) == .number(10))
        #expect(document.value(at: try #require(JSONPointer("/a~1b/m~0n/1/x"))) == .bool(true))
        #expect(document.value(at: try #require(JSONPointer("/n"))) == .null)
        #expect(document.value(at: try #require(JSONPointer("/a~1b/m~0n/2"))) == nil)
        #expect(JSONPointer("no-slash") == nil)
        #expect(JSONPointer("/a~1b/m~0n")?.description == "/a~1b/m~0n")
        #expect(JSONValue.object(["b": 1, "a": [true, "x\n"]]).serialized == #"{"a":[true,"x\n"],"b":1}"#)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array("{\"a\":".utf8)) }
    }
}
