import Foundation
import Testing

@testable import AcceptanceCore

@Suite("Models a station says are fitted")
struct FittedModelTests {
    let fixtures = "\(repositoryRoot)/Fixtures"

    @Test func aFittedModelReplacesTheRackProfilesForThatDeviceOnly() throws {
        let fitted = try RackConfiguration.load(
            rackID: "gb200-nvl72", fixtures: fixtures, protocols: testProtocols,
            models: ["cdu": "coolflow-cdu-2000"])
        #expect(fitted.profile(of: "cdu")?.model == "coolflow-cdu-2000")
        #expect(fitted.profiles["reference-cdu"] == nil)
        #expect(fitted.resolve("cdu.loop_pressure")?.point.unit == .bar, "the CoolFlow map reads pressures in bar")
        let plain = try RackConfiguration.load(rackID: "gb200-nvl72", fixtures: fixtures, protocols: testProtocols)
        #expect(plain.profile(of: "cdu")?.model == "reference-cdu")
        #expect(plain.profile(of: "psu1")?.model == fitted.profile(of: "psu1")?.model)
    }

    @Test func aGroupIsFittedMemberByMember() throws {
        let rack = try RackProfile.load(path: "\(fixtures)/racks/gb200-nvl72.yaml")
        let fitted = try rack.fitting(["compute_trays": "another-tray"])
        let members = fitted.devices.filter { $0.group == "compute_trays" }
        #expect(members.count == 18 && members.allSatisfy { $0.model == "another-tray" })
        #expect(fitted.group(named: "compute_trays")?.model == "another-tray")
        #expect(fitted.devices.filter { $0.group == "switch_trays" }.allSatisfy { $0.model != "another-tray" })
    }

    @Test func mistakesNameTheDeviceAndTheFile() throws {
        do {
            _ = try RackConfiguration.load(
                rackID: "gb200-nvl72", fixtures: fixtures, protocols: testProtocols,
                models: ["pump": "coolflow-cdu-2000"])
            Issue.record("a device the rack does not have was fitted")
        } catch {
            #expect(error.description.contains("has no device or group 'pump'"))
            #expect(error.description.contains("gb200-nvl72.yaml"))
        }
        do {
            _ = try RackConfiguration.load(
                rackID: "gb200-nvl72", fixtures: fixtures, protocols: testProtocols,
                models: ["cdu": "coolflow-cdu-9000"])
            Issue.record("a model with no profile was fitted")
        } catch {
            #expect(error.description.contains("no device profile 'coolflow-cdu-9000' for 'cdu'"))
        }
        let rack = try RackProfile.load(path: "\(fixtures)/racks/gb200-nvl72.yaml")
        #expect(throws: RackSettingError.self) { try rack.fitting(["cdu": "../../etc/passwd"]) }
    }
}
